import { describe, expect, it } from 'vitest';
import { clientAddress } from './click-handler.js';

const req = (xff?: string) => ({
  headers: xff === undefined ? {} : { 'x-forwarded-for': xff },
  socket: { remoteAddress: '10.0.0.2' },
});

describe('clientAddress: the address hashed into a click, as far as trusted proxies say', () => {
  it('no trusted proxy: the connection, whatever the header claims', () => {
    expect(clientAddress(req('203.0.113.7'), 0)).toBe('10.0.0.2');
  });
  it('one proxy (nginx sets the header): its entry, the rightmost', () => {
    expect(clientAddress(req('203.0.113.7'), 1)).toBe('203.0.113.7');
    // A client's own header before the proxy's entry is not believed.
    expect(clientAddress(req('198.51.100.1, 203.0.113.7'), 1)).toBe('203.0.113.7');
  });
  it('two proxies: the second entry from the right; more hops than entries: the leftmost', () => {
    expect(clientAddress(req('198.51.100.1, 203.0.113.7'), 2)).toBe('198.51.100.1');
    expect(clientAddress(req('198.51.100.1, 203.0.113.7'), 5)).toBe('198.51.100.1');
  });
  it('no header, or only empty entries: the connection', () => {
    expect(clientAddress(req(), 1)).toBe('10.0.0.2');
    expect(clientAddress(req(' , '), 1)).toBe('10.0.0.2');
  });
});
