'use strict';
// One transformer for the project's TypeScript and for the ESM-only packages in node_modules
// (NestJS 12 ships ES modules only, which Jest's CommonJS loader cannot require on Node 20).
// Both are turned into CommonJS with TypeScript's transpileModule; `import.meta.url` is
// rewritten because CommonJS has no `import.meta`.
const ts = require('typescript');

const compilerOptions = {
  module: ts.ModuleKind.CommonJS,
  target: ts.ScriptTarget.ES2023,
  esModuleInterop: true,
  experimentalDecorators: true,
  emitDecoratorMetadata: true,
  allowJs: true,
  sourceMap: true,
  inlineSources: true,
};

module.exports = {
  process(source, filename) {
    const code = source.replace(/\bimport\.meta\.url\b/g, "require('node:url').pathToFileURL(__filename).href");
    const out = ts.transpileModule(code, { compilerOptions, fileName: filename });
    return { code: out.outputText, map: out.sourceMapText };
  },
};
