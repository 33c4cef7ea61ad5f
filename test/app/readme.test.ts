/**
 * README.md's TypeScript is type-checked against the real constructs, so that what a reader
 * copies compiles. Every ```ts block is compiled with the project's compiler options as a file in
 * charts/ (so `../constructs`, `../contract`, `cdk8s` and `cdk8s-plus-27` resolve as they do for
 * a chart). A block that is a fragment declares its context in an HTML comment on the line before
 * its fence:
 *
 *   <!-- ts: module -->             the block is a whole file (the default)
 *   <!-- ts: chart-constructor -->  its `import` lines open the file; the rest is the body of a
 *                                   chart's constructor (`this` is the Chart)
 *
 * Blocks only type-check: they never run. Unused names are allowed (a snippet shows a use, not a
 * finished chart).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '../..');
const CONTEXTS = ['module', 'chart-constructor'] as const;

export interface CodeBlock {
  /** 1-based line of the block's first line of code in the Markdown file. */
  readonly line: number;
  readonly context: string;
  readonly code: string;
}

/** The ```ts / ```typescript blocks of a Markdown text, with their declared context. */
export function codeBlocks(markdown: string): CodeBlock[] {
  const lines = markdown.split('\n');
  const blocks: CodeBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(```+)(ts|typescript)\s*$/.exec(lines[i]);
    if (!open) continue;
    const [, indent, fence] = open;
    const previous = lines.slice(0, i).reverse().find((l) => l.trim() !== '') ?? '';
    const declared = /^\s*<!--\s*ts:\s*([\w-]+)\s*-->\s*$/.exec(previous);
    const code: string[] = [];
    let j = i + 1;
    for (; j < lines.length && lines[j].trim() !== fence; j++) code.push(lines[j].startsWith(indent) ? lines[j].slice(indent.length) : lines[j]);
    if (j === lines.length) throw new Error(`the code block at line ${i + 1} is not closed`);
    blocks.push({ line: i + 2, context: declared ? declared[1] : 'module', code: code.join('\n') });
    i = j;
  }
  return blocks;
}

/** The number of lines that open a block with its imports (each possibly spanning lines), blank lines among them included. */
function importsEnd(lines: string[]): number {
  let end = 0;
  for (let inImport = false; end < lines.length; end++) {
    const line = lines[end];
    if (!inImport && line.trim() === '') continue;
    if (!inImport && !/^import\b/.test(line)) break;
    inImport = !/;\s*$/.test(line);
  }
  return end;
}

/** Lines the chart-constructor wrapper puts between a block's imports and its body. */
const WRAPPER_HEAD = [
  "import { Chart as ReadmeChart__ } from 'cdk8s';",
  "import { Construct as ReadmeConstruct__ } from 'constructs';",
  'export class ReadmeBlock__ extends ReadmeChart__ {',
  '  constructor(scope: ReadmeConstruct__, id: string) {',
  '    super(scope, id);',
];

/** A block as a TypeScript file. */
function wrap(block: CodeBlock): string {
  if (block.context === 'module') return `${block.code}\n`;
  const lines = block.code.split('\n');
  const end = importsEnd(lines);
  return [...lines.slice(0, end), ...WRAPPER_HEAD, ...lines.slice(end), '  }', '}', ''].join('\n');
}

/** The block's line (0-based) of a line of its file; undefined for the wrapper's own lines. */
function blockLine(block: CodeBlock, fileLine: number): number | undefined {
  if (block.context === 'module') return fileLine;
  const lines = block.code.split('\n');
  const end = importsEnd(lines);
  if (fileLine < end) return fileLine;
  const line = fileLine - WRAPPER_HEAD.length;
  return line >= end && line < lines.length ? line : undefined;
}

const projectOptions: ts.CompilerOptions = (() => {
  const config = ts.getParsedCommandLineOfConfigFile(path.join(ROOT, 'tsconfig.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: (d) => { throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n')); } });
  return { ...config!.options, noEmit: true, noUnusedLocals: false, noUnusedParameters: false };
})();
/** Parsed files shared by every check (the libraries' declarations are large). */
const sourceFiles = new Map<string, ts.SourceFile>();

/**
 * Type-checks the blocks of `markdown` (named `name` in messages): one message per error,
 * `name:line: message`, with the line in the Markdown file.
 */
export function typeCheckBlocks(markdown: string, name: string): string[] {
  const blocks = codeBlocks(markdown);
  const problems: string[] = [];
  const files = new Map<string, CodeBlock>();
  blocks.forEach((block, index) => {
    if (!(CONTEXTS as readonly string[]).includes(block.context)) {
      problems.push(`${name}:${block.line - 2}: unknown context ${JSON.stringify(block.context)} for a ts block: declare one of ${CONTEXTS.join(', ')}`);
      return;
    }
    files.set(path.join(ROOT, 'charts', `readme-block-${index + 1}.ts`), block);
  });
  const host = ts.createCompilerHost(projectOptions);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (fileName, languageVersion, onError) => {
    const block = files.get(fileName);
    if (block) return ts.createSourceFile(fileName, wrap(block), languageVersion, true);
    let file = sourceFiles.get(fileName);
    if (!file) {
      file = getSourceFile(fileName, languageVersion, onError);
      if (file) sourceFiles.set(fileName, file);
    }
    return file;
  };
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (fileName) => files.has(fileName) || fileExists(fileName);
  const readFile = host.readFile.bind(host);
  host.readFile = (fileName) => (files.has(fileName) ? wrap(files.get(fileName)!) : readFile(fileName));
  const program = ts.createProgram({ rootNames: [...files.keys()], options: projectOptions, host });
  for (const diagnostic of ts.getPreEmitDiagnostics(program)) {
    const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, ' ');
    const block = diagnostic.file && files.get(diagnostic.file.fileName);
    if (!diagnostic.file || !block) {
      problems.push(`${name}: ${diagnostic.file?.fileName ?? ''} ${message}`);
      continue;
    }
    const { line } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start ?? 0);
    const inBlock = blockLine(block, line);
    problems.push(`${name}:${inBlock === undefined ? `${block.line} (wrapper)` : block.line + inBlock}: TS${diagnostic.code} ${message}`);
  }
  return problems;
}

describe('README.md', () => {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');

  it('has TypeScript blocks, among them the database a pull request adds', () => {
    const blocks = codeBlocks(readme);
    expect(blocks.length).toBeGreaterThanOrEqual(2);
    expect(blocks.some((b) => b.code.includes("new ArchivedPostgres(this, 'orders'"))).toBe(true);
  });

  it('has TypeScript blocks that type-check against the real constructs', () => {
    expect(typeCheckBlocks(readme, 'README.md')).toStrictEqual([]);
  }, 60_000);
});

describe('the README check', () => {
  const markdown = (context: string, code: string) => ['# Title', '', `<!-- ts: ${context} -->`, '```ts', code, '```', ''].join('\n');

  it('fails a block that uses a name it does not import, at its line in the Markdown file', () => {
    const code = [
      "import { ArchivedPostgres, ArchiveStorage } from '../constructs';",
      '',
      "new ArchivedPostgres(this, 'orders', {",
      '  version: 16,',
      "  archiver: { storage: ArchiveStorage.s3({ storageSecretName: 'orders-s3', bucket: 'pg-archive' }), archiveTimeout: Duration.seconds(60) },",
      '});',
    ].join('\n');
    expect(typeCheckBlocks(markdown('chart-constructor', code), 'sample.md')).toStrictEqual([
      "sample.md:9: TS2304 Cannot find name 'Duration'.",
    ]);
    // Imported, it compiles.
    expect(typeCheckBlocks(markdown('chart-constructor', `import { Duration } from 'cdk8s';\n${code}`), 'sample.md')).toStrictEqual([]);
  }, 60_000);

  it('fails a misspelt prop and a fragment declared as a module', () => {
    const fragment = "import { ArchivedPostgres } from '../constructs';\nnew ArchivedPostgres(this, 'x', { version: 16, replica: 3 } as never);";
    // At the top of a module, `this` is undefined.
    expect(typeCheckBlocks(markdown('module', fragment), 'sample.md')).toStrictEqual([
      "sample.md:6: TS2345 Argument of type 'undefined' is not assignable to parameter of type 'Construct'.",
    ]);
    const typo = "import { ArchivedPostgres, ArchiveStorage } from '../constructs';\nnew ArchivedPostgres(this, 'x', { version: 16, replica: 3, archiver: { storage: ArchiveStorage.gcs({ storageSecretName: 's', bucket: 'b' }) } });";
    expect(typeCheckBlocks(markdown('chart-constructor', typo), 'sample.md')).toStrictEqual([
      "sample.md:6: TS2561 Object literal may only specify known properties, but 'replica' does not exist in type 'ArchivedPostgresProps'. Did you mean to write 'replicas'?",
    ]);
  }, 60_000);

  it('fails a block with an unknown context', () => {
    expect(typeCheckBlocks(markdown('chart', 'const x = 1;'), 'sample.md')).toStrictEqual([
      'sample.md:3: unknown context "chart" for a ts block: declare one of module, chart-constructor',
    ]);
  });
});
