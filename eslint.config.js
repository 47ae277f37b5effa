// Type-aware linting (typescript-eslint): the rules that catch real mistakes the compiler lets through, such as
// promises nobody awaits or handles, `any` leaking out of a parse, and conditions that are always true.
// Formatting is Prettier's job (`npm run format:check`), so no stylistic rules here.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/**", "src/generated/**", "node_modules/**", "packages/client/dist/**", "bench/results/**", "console/dist/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        projectService: true,
        tsconfigRootDir: import.meta.dirname,
      },
    },
    linterOptions: { reportUnusedDisableDirectives: "error" },
    rules: {
      // Unused names are mistakes, except a deliberately ignored argument or rest sibling (`_name`).
      "@typescript-eslint/no-unused-vars": [
        "error",
        { argsIgnorePattern: "^_", varsIgnorePattern: "^_", ignoreRestSiblings: true, caughtErrors: "none" },
      ],
      // Socket.IO and Express take callbacks that may be async; their returned promise is handled inside.
      "@typescript-eslint/no-misused-promises": ["error", { checksVoidReturn: { arguments: false, attributes: false } }],
      // `async` without `await` is deliberate here: it turns a synchronous throw into a rejection for callers that
      // await the function (handlers, stop hooks, interface implementations).
      "@typescript-eslint/require-await": "off",
      // A wait that an AbortSignal ends rejects with the signal's reason, as Node's own timers/promises and
      // events.once do; the DOM types declare that reason `any`.
      "@typescript-eslint/prefer-promise-reject-errors": ["error", { allowThrowingAny: true }],
      // One listener shared by every socket gets the socket as `this` from Socket.IO (a closure per socket would
      // cost memory at 10K sockets): the owning instance is reached through `self`.
      "@typescript-eslint/no-this-alias": ["error", { allowedNames: ["self"] }],
    },
  },
  {
    // Tests read JSON responses and socket payloads as plain values and assert them whole with deepEqual; typing
    // each response body would add casts, not safety.
    files: ["test/**/*.ts"],
    rules: {
      "@typescript-eslint/no-unsafe-member-access": "off",
      "@typescript-eslint/no-unsafe-assignment": "off",
      "@typescript-eslint/no-unsafe-argument": "off",
      "@typescript-eslint/no-unsafe-call": "off",
      "@typescript-eslint/no-unsafe-return": "off",
    },
  },
  {
    // Plain JavaScript files (this config, examples) are not in a TypeScript project.
    files: ["**/*.js", "**/*.cjs", "**/*.mjs"],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      ...tseslint.configs.disableTypeChecked.languageOptions,
      // Node's globals these few scripts use (the `globals` package would be a dependency for five names).
      globals: {
        process: "readonly",
        console: "readonly",
        URL: "readonly",
        setTimeout: "readonly",
        clearTimeout: "readonly",
        module: "writable",
        require: "readonly",
      },
    },
  },
);
