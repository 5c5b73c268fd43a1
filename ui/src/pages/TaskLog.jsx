// A task attempt's log: paged by byte range (64 KiB at a time, whole lines), or
// followed while the task runs (the server streams new lines until it finishes).

import { useEffect, useRef, useState } from 'preact/hooks';
import { followLog, get, logPage } from '../api.js';
import { ErrorBox, StateBadge, useLoad } from '../components/ui.jsx';
import { FINISHED, fmtBytes, fmtTime } from '../util.js';

const PAGE = 64 * 1024;
/// What a followed log keeps on screen; older text is dropped from view (not from the
/// server: page back to read it).
const KEEP = 512 * 1024;

export function TaskLog({ id }) {
  const task = useLoad(() => get(`/tasks/${id}`), [id]);
  const [offsets, setOffsets] = useState([0]);
  const [page, setPage] = useState(null);
  const [error, setError] = useState(null);
  const [follow, setFollow] = useState(null);
  const [followed, setFollowed] = useState('');
  const box = useRef(null);
  const t = task.data;
  const offset = offsets[offsets.length - 1];

  useEffect(() => {
    if (follow !== null || !t) return;
    // A running task is followed from the start; a finished one is paged.
    setFollow(!FINISHED.has(t.state));
  }, [t]);

  useEffect(() => {
    if (follow !== false) return;
    logPage(id, offset, PAGE).then(
      (p) => {
        setPage({ offset, ...p });
        setError(null);
      },
      setError,
    );
  }, [id, offset, follow]);

  useEffect(() => {
    if (!follow) return undefined;
    const ctrl = new AbortController();
    setFollowed('');
    followLog(id, offset, ctrl.signal, (text) => {
      setFollowed((cur) => {
        const next = cur + text;
        return next.length > KEEP ? next.slice(next.length - KEEP) : next;
      });
    }).then(
      () => task.reload(),
      (e) => {
        if (!ctrl.signal.aborted) setError(e);
      },
    );
    return () => ctrl.abort();
  }, [id, follow]);

  useEffect(() => {
    if (follow && box.current) box.current.scrollTop = box.current.scrollHeight;
  }, [followed, follow]);

  const atEnd = page && page.next === page.offset;
  return (
    <section>
      <div class="head">
        <h1>
          {task.data ? (
            <>
              <a href={`#/instances/${task.data.workflow_instance_id}`}>Instance {task.data.workflow_instance_id}</a> / {t.task_name} #
              {t.attempt} log
            </>
          ) : (
            `Task ${id} log`
          )}
        </h1>
        {t ? <StateBadge state={t.state} /> : null}
      </div>
      <ErrorBox error={task.error || error} />
      {t ? (
        <p class="meta">
          {t.task_type} {t.plugin_version || ''} · host {t.host || '—'} · started {fmtTime(t.started_at)} · ended {fmtTime(t.ended_at)}
        </p>
      ) : null}
      <div class="toolbar" aria-label="Log paging">
        <label class="check">
          <input type="checkbox" checked={!!follow} onChange={(e) => setFollow(e.target.checked)} /> Follow
        </label>
        <button type="button" disabled={follow || offsets.length === 1} onClick={() => setOffsets([0])}>
          « Start
        </button>
        <button type="button" disabled={follow || offsets.length === 1} onClick={() => setOffsets(offsets.slice(0, -1))}>
          ‹ Previous
        </button>
        <button
          type="button"
          disabled={follow || !page || atEnd}
          onClick={() => setOffsets([...offsets, page.next])}
        >
          Next ›
        </button>
        <span class="muted" aria-live="polite">
          {follow
            ? `following from byte ${offset}${t && FINISHED.has(t.state) ? ' · the task has finished' : ''}`
            : page
              ? `bytes ${page.offset}–${page.next} (${fmtBytes(page.next - page.offset)})${atEnd ? ' · end of log' : ''}`
              : ''}
        </span>
      </div>
      <pre class="log" ref={box} tabIndex={0} aria-label="Log text">
        {follow ? followed : page?.text}
      </pre>
    </section>
  );
}
