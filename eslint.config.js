// Lint rules: type-aware, no floating promises (an un-awaited promise in a consumer is a lost message),
// type-only imports kept apart. Generated code in gen/ is not linted.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["gen/**", "node_modules/**", "coverage/**", ".run/**", ".proto-deps/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ["*.js", "services/cli/*.mjs"] }, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/no-misused-promises": "error",
      "@typescript-eslint/consistent-type-imports": ["error", { fixStyle: "inline-type-imports" }],
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_" }],
      "no-console": "error",
    },
  },
  {
    files: ["**/*.js", "**/*.mjs"],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: { globals: { process: "readonly" } },
  },
  {
    // The dashboard's browser script: plain DOM, outside the TypeScript project.
    files: ["services/admin/dashboard/assets/**/*.js"],
    languageOptions: {
      parserOptions: { projectService: false },
      globals: { document: "readonly", fetch: "readonly", setTimeout: "readonly", Node: "readonly" },
    },
  },
);
