import { describe, expect, it } from 'vitest'
import { configFromForm, fieldsView, formValues, formatMs, hookName, placeholderFor, wordCountText } from './plugins'
import type { PluginSetting } from './api'

const setting = (key: string, type: PluginSetting['type'], extra: Partial<PluginSetting> = {}): PluginSetting =>
  ({ key, type, default: null, description: null, minimum: null, maximum: null, ...extra })

describe('plugins', () => {
  const schema = [
    setting('wordsPerMinute', 'integer', { default: 200, minimum: 1 }),
    setting('words', 'array', { default: [] }),
    setting('greeting', 'string', { default: 'hello' }),
    setting('strict', 'boolean', { default: false }),
    setting('ratio', 'number')
  ]

  it('spells hooks the way manifests do', () => {
    expect(hookName('BEFORE_SAVE_VERSION')).toBe('before-save-version')
    expect(hookName('ON_METADATA_CHANGE')).toBe('on-metadata-change')
    expect(hookName('ENRICH')).toBe('enrich')
  })

  it('starts the form from what the admin set; empty text means the default', () => {
    expect(formValues(schema, {})).toEqual({ wordsPerMinute: '', words: '', greeting: '', strict: false, ratio: '' })
    expect(formValues(schema, null)).toEqual({ wordsPerMinute: '', words: '', greeting: '', strict: false, ratio: '' })
    expect(formValues(schema, { wordsPerMinute: 250, words: ['frobnicate', 'synergy'], strict: true, ratio: 0.5 }))
      .toEqual({ wordsPerMinute: '250', words: 'frobnicate\nsynergy', greeting: '', strict: true, ratio: '0.5' })
    expect(formValues([setting('on', 'boolean', { default: true })], {})).toEqual({ on: true })
    expect(placeholderFor(schema[0])).toBe('200')
    expect(placeholderFor(schema[1])).toBe('One per line')
    expect(placeholderFor(setting('w', 'array', { default: ['a', 'b'] }))).toBe('a\nb')
    expect(placeholderFor(schema[4])).toBe('')
  })

  it('saves every value that is not empty', () => {
    const { config, errors } = configFromForm(schema, { wordsPerMinute: '250', words: ' frobnicate \n\n synergy\n', greeting: '', strict: true, ratio: '' })
    expect(config).toEqual({ wordsPerMinute: 250, words: ['frobnicate', 'synergy'], strict: true })
    expect(errors).toEqual({})
    // a checkbox left at its default is not pinned
    expect(configFromForm(schema, { wordsPerMinute: '', words: '', greeting: 'hi', strict: false, ratio: '0' }).config).toEqual({ greeting: 'hi', ratio: 0 })
    // numbers the browser could not read; 2.5 for an integer goes to the server, which says why
    expect(configFromForm(schema, { wordsPerMinute: 'abc', words: '', greeting: '', strict: false, ratio: '' }).errors).toEqual({ wordsPerMinute: 'Enter a whole number.' })
    expect(configFromForm(schema, { wordsPerMinute: '2.5', words: '', greeting: '', strict: false, ratio: '' }).config).toEqual({ wordsPerMinute: 2.5 })
  })

  it('formats call times', () => {
    expect(formatMs(null)).toBe('—')
    expect(formatMs(0.4213)).toBe('0.42 ms')
    expect(formatMs(12.345)).toBe('12.3 ms')
  })

  it('shows word count and reading time, and other plugins’ fields as key: value', () => {
    expect(wordCountText({ words: 412, readingMinutes: 3 })).toBe('412 words · 3 min read')
    expect(wordCountText({ words: 1, readingMinutes: 1 })).toBe('1 word · 1 min read')
    expect(wordCountText({ words: 0, readingMinutes: 0 })).toBe('0 words · < 1 min read')
    expect(wordCountText({ words: 1200 })).toBe('1,200 words')
    expect(wordCountText('many')).toBeNull()
    const v = fieldsView({ 'word-count': { words: 412, readingMinutes: 3 }, seo: { score: 87, keywords: ['a', 'b'], ok: true, extra: { x: 1 } }, flag: 'yes' })
    expect(v.wordCount).toBe('412 words · 3 min read')
    expect(v.groups).toEqual([
      { plugin: 'seo', items: [{ key: 'score', value: '87' }, { key: 'keywords', value: 'a, b' }, { key: 'ok', value: 'true' }, { key: 'extra', value: '{"x":1}' }] },
      { plugin: 'flag', items: [{ key: 'value', value: 'yes' }] }
    ])
    expect(fieldsView({})).toEqual({ wordCount: null, groups: [] })
    expect(fieldsView(null)).toEqual({ wordCount: null, groups: [] })
    // a word-count without the expected shape is shown like any other
    expect(fieldsView({ 'word-count': { total: 5 } }).groups).toEqual([{ plugin: 'word-count', items: [{ key: 'total', value: '5' }] }])
  })
})
