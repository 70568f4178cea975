// A Vellum plugin in JavaScript (componentize-js), against the same WIT as the Rust
// ones: an excerpt of every saved version, with its length in characters and paragraphs.
import { get } from 'vellum:plugin/config@0.1.0';
import { log } from 'vellum:plugin/log@0.1.0';

export const enrich = {
  enrich(_ctx, doc) {
    const setting = get('excerptLength');
    const max = setting === undefined ? 160 : JSON.parse(setting);
    const text = doc.bodyText.replace(/\s+/g, ' ').trim();
    let excerpt = text;
    if (text.length > max) {
      excerpt = text.slice(0, max - 1).replace(/\s+\S*$/, '') + '…';
    }
    const paragraphs = doc.bodyText.split(/\n\n+/).filter((p) => p.trim()).length;
    if (paragraphs === 0) log('debug', 'empty body');
    return JSON.stringify({ excerpt, characters: text.length, paragraphs });
  },
};
