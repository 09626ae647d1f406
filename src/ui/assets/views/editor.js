// A JSON editor for noderole data: refuses what is not a JSON object
// before anything is sent, and shows the API's answer beside itself.

import { errorText, h } from '../dom.js';

/**
 * `value`: the data to start from. `onSave(data)`: sends it and resolves to
 * the data kiln stored (shown from then on); its rejection (an ApiError)
 * is shown under the editor. Returns `{el, setValue}`;
 * `setValue` changes the text only while the operator has not edited it.
 */
export function dataEditor({ value, onSave, label = 'Save data', disabled = false, note = '' }) {
  let pristine = pretty(value);
  let busyNote = '';
  const area = h('textarea', {
    class: 'json',
    spellcheck: 'false',
    autocapitalize: 'off',
    rows: String(Math.min(16, Math.max(4, pristine.split('\n').length + 1))),
    'aria-label': 'Noderole data as JSON',
    'data-editor': 'json',
    disabled,
    oninput: () => check(),
  });
  area.value = pristine;
  const message = h('p', { class: 'message', role: 'status', 'data-editor-message': '' });
  const save = h('button', { type: 'submit', disabled }, label);
  const form = h(
    'form',
    { class: 'editor', onsubmit: submit },
    area,
    h('div', { class: 'editor-actions' }, save, note ? h('span', { class: 'muted' }, note) : null, message),
  );

  function parse() {
    let data;
    try {
      data = JSON.parse(area.value);
    } catch (e) {
      return { error: `Not valid JSON: ${e.message}` };
    }
    if (data === null || typeof data !== 'object' || Array.isArray(data)) {
      return { error: 'Data must be a JSON object, like {"key": "value"}.' };
    }
    return { data };
  }

  function say(text, kind) {
    message.textContent = text;
    message.className = `message ${kind ?? ''}`;
    message.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  }

  function check() {
    const { error } = parse();
    area.setAttribute('aria-invalid', error ? 'true' : 'false');
    if (error) say(error, 'error');
    else say('', '');
  }

  async function submit(e) {
    e.preventDefault();
    const { data, error } = parse();
    if (error) {
      say(error, 'error');
      area.focus();
      return;
    }
    save.disabled = true;
    say('Saving…', 'pending');
    try {
      const stored = await onSave(data);
      pristine = pretty(stored ?? data);
      area.value = pristine;
      say('Saved: the noderole is proposed until committed.', 'ok');
    } catch (err) {
      say(errorText(err), 'error');
    } finally {
      save.disabled = disabled;
    }
  }

  return {
    el: form,
    setValue(v) {
      if (area.value === pristine && document.activeElement !== area) {
        pristine = pretty(v);
        area.value = pristine;
      }
    },
    setDisabled(off, why = '') {
      disabled = off;
      area.disabled = off;
      save.disabled = off;
      if (off && why) {
        busyNote = why;
        say(why, 'pending');
      } else if (!off && busyNote && message.textContent === busyNote) {
        busyNote = '';
        say('', '');
      }
    },
  };
}

function pretty(v) {
  return JSON.stringify(v ?? {}, null, 2);
}
