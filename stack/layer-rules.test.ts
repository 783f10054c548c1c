// The layer rules of eslint.config.js catch a violating import (and let the allowed ones through):
// lints small snippets as if they lived in each folder.
import { ESLint } from 'eslint';
import { beforeAll, describe, expect, it } from 'vitest';

const eslint = new ESLint();

async function layerErrors(filePath: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath });
  return (result?.messages ?? [])
    .filter((m) => m.ruleId === '@typescript-eslint/no-restricted-imports')
    .map((m) => m.message);
}

describe('layer rules (npm run lint)', () => {
  // The first lint loads the config and typescript-eslint (seconds on a busy machine): once, here,
  // with room, so no single test carries it past the default timeout.
  beforeAll(() => eslint.lintText('export {};\n', { filePath: 'common/warm-up.ts' }), 60_000);

  it('a layer importing another layer fails with the rule in the message', async () => {
    const errors = await layerErrors(
      'speed-layer/example.ts',
      "import { BatchStore } from '../serving-layer/batch-store.js';\nexport const x = BatchStore;\n",
    );
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/layer rule: a layer never imports another layer/);
  });

  it('the catalogue is a layer of its own: it imports no other layer, and no other layer imports it', async () => {
    expect(
      await layerErrors(
        'catalogue/example.ts',
        "import { newImpression } from '../ingest/impression.js';\nexport const x = newImpression;\n",
      ),
    ).toEqual([
      expect.stringMatching(
        /layer rule: a layer never imports another layer.*\(catalogue\/ must not import ingest\/;/,
      ),
    ]);
    for (const folder of ['ingest', 'serving-layer', 'common'])
      expect(
        await layerErrors(
          `${folder}/example.ts`,
          "import { catalogueRouter } from '../catalogue/router.js';\nexport const x = catalogueRouter;\n",
        ),
      ).toHaveLength(1);
    expect(
      await layerErrors(
        'apps/example.ts',
        "import * as a from '../catalogue/router.js';\nimport * as b from '../ingest/impression.js';\nexport const x = [a, b];\n",
      ),
    ).toEqual([]);
  });

  it('common/ imports no layer and no composition root', async () => {
    for (const from of ['../ingest/service.js', '../apps/api.js'])
      expect(
        await layerErrors('common/example.ts', `import * as m from '${from}';\nexport const x = m;\n`),
      ).toHaveLength(1);
  });

  it('allows the exceptions: activities → batch-layer, workflows → activity types, apps → anything', async () => {
    expect(
      await layerErrors(
        'activities/example.ts',
        "import * as m from '../batch-layer/compaction.js';\nexport const x = m;\n",
      ),
    ).toEqual([]);
    expect(
      await layerErrors(
        'workflows/example.ts',
        "import type { BatchActivities } from '../activities/index.js';\nexport type X = BatchActivities;\n",
      ),
    ).toEqual([]);
    expect(
      await layerErrors(
        'apps/example.ts',
        "import * as a from '../ingest/service.js';\nimport * as b from '../serving-layer/router.js';\nexport const x = [a, b];\n",
      ),
    ).toEqual([]);
    expect(
      await layerErrors(
        'workflows/example.ts',
        "import * as m from '../batch-layer/compaction.js';\nexport const x = m;\n",
      ),
    ).toHaveLength(1);
  });

  it('workflows/ import only the types of activities/: a value import fails', async () => {
    const errors = await layerErrors(
      'workflows/example.ts',
      "import { createActivities } from '../activities/index.js';\nexport const x = createActivities;\n",
    );
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/may import only types from activities\//);
    expect(
      await layerErrors(
        'workflows/example.ts',
        "import { type BatchActivities } from '../activities/index.js';\nexport type X = BatchActivities;\n",
      ),
    ).toEqual([]);
  });

  it('workflow code never loads the Temporal client; workflows/operations.ts (client side) does', async () => {
    const client = "import { Client } from '@temporalio/client';\nexport const x = Client;\n";
    expect(await layerErrors('workflows/example.ts', client)).toHaveLength(1);
    expect(
      await layerErrors(
        'workflows/example.ts',
        "import { startBackfill } from './operations.js';\nexport const x = startBackfill;\n",
      ),
    ).toHaveLength(1);
    expect(await layerErrors('workflows/operations.ts', client)).toEqual([]);
  });
});
