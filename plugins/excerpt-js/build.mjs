// Builds plugin.wasm from excerpt.js against the same WIT as the Rust plugins
// (sdk/wit, world `enricher`). No WASI features are used, so none are imported.
import { componentize } from '@bytecodealliance/componentize-js';
import { readFile, writeFile } from 'node:fs/promises';

const source = await readFile(new URL('./excerpt.js', import.meta.url), 'utf8');
const { component } = await componentize(source, {
  witPath: new URL('../../sdk/wit', import.meta.url).pathname,
  worldName: 'enricher',
  disableFeatures: ['random', 'stdio', 'clocks', 'http', 'fetch-event'],
});
await writeFile(new URL('./plugin.wasm', import.meta.url), component);
console.log(`plugin.wasm: ${component.length} bytes`);
