// Lint rules: typescript-eslint's recommended set; `any` is an error at module boundaries; and the
// layer rules of DESIGN.md: a layer never imports another layer, what two layers share lives in
// common/, and only apps/ (plus tests, tools and benchmarks) wires layers together.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const LAYERS = [
  'ingest',
  'catalogue',
  'speed-layer',
  'batch-layer',
  'serving-layer',
  'workflows',
  'activities',
];
const WIRING = ['apps', 'stack', 'tools', 'bench', 'test'];

/** no-restricted-imports for the files of `folder`: none of `forbidden` (folder names), with the rule in the message. */
function onlyImports(folder, forbidden, rule) {
  return {
    files: [`${folder}/**/*.ts`],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: forbidden.map((f) => ({
            group: [`**/${f}/**`, `**/${f}`],
            message: `layer rule: ${rule} (${folder}/ must not import ${f}/; see CONTRIBUTING.md)`,
          })),
        },
      ],
    },
  };
}

const others = (self) => LAYERS.filter((l) => l !== self);

export default tseslint.config(
  {
    ignores: [
      'node_modules/',
      '.stack/',
      'dist/',
      'bench/results/',
      'serving-layer/public/vendor/',
      'packages/*/dist/',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['**/*.mjs', '**/*.js'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
  },
  onlyImports('common', [...LAYERS, ...WIRING], 'common/ imports no layer: it is what the layers share'),
  ...['ingest', 'catalogue', 'speed-layer', 'batch-layer', 'serving-layer'].map((layer) =>
    onlyImports(
      layer,
      [...others(layer), ...WIRING],
      'a layer never imports another layer; apps/ wires them',
    ),
  ),
  // The two exceptions DESIGN.md names: activities call the batch layer; workflows use activity types.
  onlyImports(
    'activities',
    [...others('activities').filter((l) => l !== 'batch-layer'), ...WIRING],
    'activities/ may import batch-layer/ and common/ only',
  ),
  onlyImports(
    'workflows',
    [...others('workflows').filter((l) => l !== 'activities'), ...WIRING],
    'workflows/ may import activity types and common/ only (deterministic code)',
  ),
);
