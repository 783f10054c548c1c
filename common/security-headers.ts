// Security headers (helmet) for every Express app we serve: the API and the dashboard in the API
// process, the health routes of the click process. The dashboard loads only its own script and
// stylesheet and calls only its own origin, so the CSP allows nothing inline and nothing foreign;
// no page of ours may be framed.
import helmet from 'helmet';
import type { RequestHandler } from 'express';

export function securityHeaders(): RequestHandler {
  return helmet({
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", 'data:'],
        connectSrc: ["'self'"],
        fontSrc: ["'self'"],
        objectSrc: ["'none'"],
        baseUri: ["'self'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
      },
    },
    frameguard: { action: 'deny' },
    // Plain HTTP in local runs; a TLS terminator in front sets HSTS where it belongs.
    strictTransportSecurity: false,
  });
}
