// A YAML editor: a plain textarea (native keyboard, undo, selection) with a line-number
// gutter that marks the lines the server found problems on; clicking a problem moves
// the cursor to its line.

import { diffLines } from 'diff';
import { useEffect, useRef } from 'preact/hooks';

const LINE_PX = 18;

export function Editor({ value, onInput, problems, readOnly, jump }) {
  const area = useRef(null);
  const gutter = useRef(null);
  const lines = value.split('\n').length;
  const bad = new Map();
  for (const p of problems || []) if (p.line) bad.set(p.line, [...(bad.get(p.line) || []), p.text]);

  useEffect(() => {
    if (!jump || !area.current) return;
    const el = area.current;
    const before = value.split('\n').slice(0, jump.line - 1).join('\n');
    const at = jump.line > 1 ? before.length + 1 : 0;
    el.focus();
    el.setSelectionRange(at, at);
    el.scrollTop = Math.max(0, (jump.line - 5) * LINE_PX);
  }, [jump]);

  const sync = () => {
    if (gutter.current && area.current) gutter.current.scrollTop = area.current.scrollTop;
  };
  return (
    <>
    <p id="editor-help" class="hint">
      Tab indents by two spaces; press Esc, then Tab, to leave the editor.
    </p>
    <div class="editor">
      <div class="gutter" ref={gutter} aria-hidden="true">
        {Array.from({ length: lines }, (_, i) => (
          <div
            key={i}
            class={bad.has(i + 1) ? 'gutter-line bad' : 'gutter-line'}
            data-line={i + 1}
            title={bad.get(i + 1)?.join('\n')}
          >
            {i + 1}
          </div>
        ))}
      </div>
      <textarea
        ref={area}
        aria-label="Workflow definition (YAML)"
        aria-describedby="editor-help"
        spellcheck={false}
        wrap="off"
        readOnly={readOnly}
        value={value}
        onInput={(e) => onInput(e.target.value)}
        onScroll={sync}
        onKeyDown={(e) => {
          // Tab indents (YAML wants spaces); Escape then Tab leaves the editor.
          if (e.key === 'Tab' && !e.shiftKey && !e.target.dataset.escaped && !readOnly) {
            e.preventDefault();
            const el = e.target;
            const s = el.selectionStart;
            const next = `${el.value.slice(0, s)}  ${el.value.slice(el.selectionEnd)}`;
            onInput(next);
            requestAnimationFrame(() => el.setSelectionRange(s + 2, s + 2));
          } else if (e.key === 'Escape') {
            e.target.dataset.escaped = '1';
          } else {
            delete e.target.dataset.escaped;
          }
        }}
      />
    </div>
    </>
  );
}

/// Line diff between two texts, with old and new line numbers.
export function DiffView({ before, after }) {
  const parts = diffLines(before, after);
  let a = 1;
  let b = 1;
  const rows = [];
  for (const part of parts) {
    const lines = part.value.replace(/\n$/, '').split('\n');
    for (const line of lines) {
      if (part.added) rows.push(['add', '', b++, `+ ${line}`]);
      else if (part.removed) rows.push(['del', a++, '', `- ${line}`]);
      else rows.push(['same', a++, b++, `  ${line}`]);
    }
  }
  const changed = parts.some((p) => p.added || p.removed);
  return (
    <div class="diff" aria-label="Differences between the versions">
      {!changed ? <p class="muted">The two versions are the same.</p> : null}
      <table>
        <tbody>
          {rows.map(([kind, x, y, text], i) => (
            <tr key={i} class={`diff-${kind}`}>
              <td class="num">{x}</td>
              <td class="num">{y}</td>
              <td class="pre">{text}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
