'use strict';
// One transformer for the project's TypeScript and for the ESM-only packages in node_modules
// (NestJS 12 ships ES modules only, which Jest's CommonJS loader cannot require on Node 20).
// Both are turned into CommonJS with TypeScript's transpileModule; `import.meta.url` is
// rewritten (with `resolve`, `dirname`, `filename`) because CommonJS has no `import.meta`.
const { createHash } = require('node:crypto');
const { readFileSync } = require('node:fs');
const ts = require('typescript');

// Cached output must be invalidated when this file or TypeScript changes.
const SELF = createHash('sha256').update(readFileSync(__filename)).update(ts.version).digest('hex');

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
  getCacheKey(source, filename) {
    return createHash('sha256').update(SELF).update(filename).update(source).digest('hex');
  },
  process(source, filename) {
    const code = source
      .replace(/^\s*const require = createRequire\(import\.meta\.url\);?\s*$/m, '')
      .replace(/\bimport\.meta\.url\b/g, "require('node:url').pathToFileURL(__filename).href")
      .replace(/\bimport\.meta\.resolve\(/g, 'require.resolve(')
      .replace(/\bimport\.meta\.dirname\b/g, '__dirname')
      .replace(/\bimport\.meta\.filename\b/g, '__filename');
    const out = ts.transpileModule(code, { compilerOptions, fileName: filename });
    return { code: out.outputText, map: out.sourceMapText };
  },
};
