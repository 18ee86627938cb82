#!/usr/bin/env node
// Entry of `npx orderflow`: loads the TypeScript CLI through tsx (Bun runs it natively).
import { register } from "tsx/esm/api";

register();
const { runCli } = await import("./main.ts");
process.exitCode = await runCli(process.argv);
