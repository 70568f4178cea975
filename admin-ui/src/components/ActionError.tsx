import { errorText, pluginNotice, type PluginAction, type PluginNotice } from '../lib/errors'

/** An action's error as shown: its sentence, and the plugin notice when a plugin refused or failed. */
export interface ShownError { text: string, plugin: PluginNotice | null }

export function shownError (e: unknown, action: PluginAction): ShownError {
  return { text: errorText(e), plugin: pluginNotice(e, action) }
}

/**
 * The error of an action, next to it: a plugin's refusal names the plugin and says what
 * it said; anything else is the usual one-line error.
 */
export function ActionError ({ error, testId }: { error: ShownError, testId?: string }) {
  const n = error.plugin
  if (!n) return <p className="error" role="alert" data-testid={testId}>{error.text}</p>
  return (
    <div className={`error plugin-notice plugin-${n.kind}`} role="alert" data-testid={testId} data-plugin={n.plugin} data-reason={n.reason}>
      <strong className="plugin-headline">{n.headline}</strong>
      {n.detail && <span className="plugin-message">{n.detail}</span>}
    </div>
  )
}
