import type { Fields } from '../lib/api'
import { fieldsView } from '../lib/plugins'

/** Fields `enrich` plugins computed for a version: word count and reading time, then the rest as key: value. */
export function PluginFields ({ fields, testId }: { fields: Fields | null | undefined, testId?: string }) {
  const view = fieldsView(fields)
  if (!view.wordCount && view.groups.length === 0) return null
  return (
    <div className="plugin-fields">
      {view.wordCount && <p className="word-count" data-testid={testId}>{view.wordCount}</p>}
      {view.groups.map((g) => (
        <div className="field-group" key={g.plugin}>
          <h4>{g.plugin}</h4>
          <dl>
            {g.items.map((i) => <div key={i.key}><dt>{i.key}</dt><dd>{i.value}</dd></div>)}
          </dl>
        </div>
      ))}
    </div>
  )
}

/** Whether there is anything for `PluginFields` to show. */
export function hasFields (fields: Fields | null | undefined): boolean {
  const view = fieldsView(fields)
  return view.wordCount !== null || view.groups.length > 0
}
