// The Gantt chart of an instance: one row per task attempt, tasks in topological order,
// time across; a running attempt's bar grows to now.

import { colour, fmtDuration, fmtTime, topoOrder } from '../util.js';

export function Gantt({ tasks, attempts, now, onSelect }) {
  const order = topoOrder(tasks);
  const rank = new Map(order.map((n, i) => [n, i]));
  const rows = attempts
    .filter((a) => a.started_at)
    .slice()
    .sort(
      (a, b) =>
        (rank.get(a.task_name) ?? 1e9) - (rank.get(b.task_name) ?? 1e9) ||
        a.attempt - b.attempt ||
        a.id - b.id,
    );
  if (!rows.length) return <p class="muted">No attempt has started yet.</p>;
  const start = Math.min(...rows.map((r) => r.started_at));
  const end = Math.max(...rows.map((r) => r.ended_at ?? now), start + 1);
  const span = end - start;
  const ticks = [0, 0.25, 0.5, 0.75, 1];
  return (
    <div class="gantt" role="table" aria-label="Gantt chart of task attempts">
      <div class="gantt-row gantt-axis" role="row">
        <span class="gantt-label" role="columnheader">
          task · attempt
        </span>
        <span class="gantt-track">
          {ticks.map((t) => (
            <span key={t} class="gantt-tick" style={{ left: `${t * 100}%` }}>
              +{fmtDuration(t * span)}
            </span>
          ))}
        </span>
      </div>
      {rows.map((r) => {
        const left = ((r.started_at - start) / span) * 100;
        const width = Math.max((((r.ended_at ?? now) - r.started_at) / span) * 100, 0.4);
        return (
          <div class="gantt-row" role="row" key={r.id} data-task={r.task_name}>
            <span class="gantt-label" role="cell">
              <button type="button" class="link" onClick={() => onSelect && onSelect(r.task_name)}>
                {r.task_name}
              </button>{' '}
              #{r.attempt}
            </span>
            <span class="gantt-track" role="cell">
              <span
                class="gantt-bar"
                data-state={r.state}
                style={{ left: `${left}%`, width: `${width}%`, background: colour(r.state) }}
                title={`${r.task_name} attempt ${r.attempt}: ${r.state}\n${fmtTime(r.started_at)} → ${fmtTime(r.ended_at)}\n${fmtDuration((r.ended_at ?? now) - r.started_at)}`}
              />
            </span>
          </div>
        );
      })}
    </div>
  );
}
