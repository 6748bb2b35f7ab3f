// ESLint flat config: the recommended JavaScript and typescript-eslint rules over every package's
// sources, tests and scripts. Layout is Prettier's job (`npm run format`), not ESLint's.
//
// Typed linting (rules that ask the TypeScript program) is left out on purpose: on a 2-core machine
// it took 90 s against 20 s for this set, and nearly all of what it added was node:test's
// `test()`/`describe()` promises and async methods that have nothing to await but must reject
// rather than throw. `tsc -b` already checks the types.
import { defineConfig } from 'eslint/config';
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default defineConfig(
  {
    ignores: ['**/dist/', '**/node_modules/', '.tools/', '.services/', '.kafka/', 'bench-results/'],
  },
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    languageOptions: {
      ecmaVersion: 2023,
      sourceType: 'module',
      globals: { ...globals.node },
    },
    rules: {
      // A leading underscore marks a parameter an implementation must accept but does not use
      // (an interface method, a callback's position); the same convention `noUnusedParameters`
      // honours. Anything else unused is a finding, caught errors included.
      '@typescript-eslint/no-unused-vars': [
        'error',
        { args: 'all', argsIgnorePattern: '^_', caughtErrors: 'all', caughtErrorsIgnorePattern: '^_' },
      ],
      // A control-character class here is a validator that rejects control characters (record
      // keys in backbone-kit, and its tests): the rule would only ever flag the point of the code.
      'no-control-regex': 'off',
    },
  },
  {
    files: ['packages/*/test/**/*.ts'],
    rules: {
      // Tests walk JSON parsed from sockets, HTTP answers and YAML manifests, then assert on it:
      // `any` is the honest type of that input there. Sources keep the rule.
      '@typescript-eslint/no-explicit-any': 'off',
    },
  },
);
