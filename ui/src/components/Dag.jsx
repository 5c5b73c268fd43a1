// A workflow's task graph, laid out by dagre (left to right), drawn as SVG: each task
// with its type, coloured by state when an instance's states are given; the branches of
// logic tasks (Switch conditions, Condition success/failure) are labelled on their edges.

import { Graph, layout } from '@dagrejs/dagre';
import { useMemo } from 'preact/hooks';
import { colour, ink } from '../util.js';

const W = 170;
const H = 46;

function asList(v) {
  if (v === undefined || v === null || v === '') return [];
  return Array.isArray(v) ? v : [v];
}

/// Edge labels of a logic task's branches: `from -> to` → label.
export function branchLabels(tasks) {
  const labels = new Map();
  for (const t of tasks) {
    const type = String(t.task_type || '').toLowerCase();
    const p = t.params || {};
    if (type === 'switch') {
      for (const c of asList(p.condition)) {
        if (c && c.task) labels.set(`${t.name}->${c.task}`, c.condition ? String(c.condition) : 'default');
      }
    } else if (type === 'condition' || type === 'conditions') {
      for (const s of asList(p.success_task)) labels.set(`${t.name}->${s}`, 'on success');
      for (const f of asList(p.failed_task)) labels.set(`${t.name}->${f}`, 'on failure');
    }
  }
  return labels;
}

function shorten(s, n) {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

export function Dag({ tasks, states, selected, onSelect }) {
  const laid = useMemo(() => {
    const g = new Graph({ multigraph: false });
    g.setGraph({ rankdir: 'LR', nodesep: 22, ranksep: 70, marginx: 12, marginy: 12 });
    g.setDefaultEdgeLabel(() => ({}));
    const names = new Set(tasks.map((t) => t.name));
    const labels = branchLabels(tasks);
    for (const t of tasks) g.setNode(t.name, { width: W, height: H });
    for (const t of tasks) {
      for (const d of t.deps || []) {
        if (!names.has(d)) continue;
        const label = labels.get(`${d}->${t.name}`);
        g.setEdge(d, t.name, label ? { label, width: Math.min(160, label.length * 7 + 8), height: 16, labelpos: 'c' } : {});
      }
    }
    layout(g);
    const graph = g.graph();
    return {
      width: Math.max(graph.width || 0, 200),
      height: Math.max(graph.height || 0, 60),
      nodes: tasks.map((t) => ({ task: t, ...g.node(t.name) })),
      edges: g.edges().map((e) => ({ key: `${e.v}->${e.w}`, ...g.edge(e) })),
    };
  }, [tasks]);

  return (
    <div class="dag" role="group" aria-label="Workflow graph">
      <svg width={laid.width} height={laid.height} viewBox={`0 0 ${laid.width} ${laid.height}`}>
        <defs>
          <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto">
            <path d="M0,0 L10,5 L0,10 z" fill="#777" />
          </marker>
        </defs>
        {laid.edges.map((e) => (
          <g key={e.key} class="edge" data-edge={e.key}>
            <path
              d={e.points.map((p, i) => `${i ? 'L' : 'M'}${p.x},${p.y}`).join(' ')}
              fill="none"
              stroke="#999"
              stroke-width="1.5"
              marker-end="url(#arrow)"
            />
            {e.label ? (
              <text class="edge-label" x={e.x} y={e.y + 4} text-anchor="middle">
                {shorten(e.label, 24)}
              </text>
            ) : null}
          </g>
        ))}
        {laid.nodes.map((n) => {
          const state = states ? states[n.task.name] : undefined;
          const fill = state ? colour(state) : '#fff';
          const text = state ? ink(state) : '#111';
          const isSel = selected === n.task.name;
          return (
            <g
              key={n.task.name}
              class="node"
              data-task={n.task.name}
              data-state={state || ''}
              transform={`translate(${n.x - W / 2},${n.y - H / 2})`}
              tabindex={onSelect ? 0 : undefined}
              role={onSelect ? 'button' : undefined}
              aria-label={`${n.task.name} (${n.task.task_type})${state ? `: ${state}` : ''}`}
              onClick={onSelect ? () => onSelect(n.task.name) : undefined}
              onKeyDown={
                onSelect
                  ? (e) => {
                      if (e.key === 'Enter' || e.key === ' ') {
                        e.preventDefault();
                        onSelect(n.task.name);
                      }
                    }
                  : undefined
              }
            >
              <title>{`${n.task.name} · ${n.task.task_type}${state ? ` · ${state}` : ''}${n.task.description ? `\n${n.task.description}` : ''}`}</title>
              <rect
                width={W}
                height={H}
                rx="6"
                fill={fill}
                stroke={isSel ? '#f5a623' : '#555'}
                stroke-width={isSel ? 3 : 1}
              />
              <text x="10" y="19" fill={text} class="node-name">
                {shorten(n.task.name, 22)}
              </text>
              <text x="10" y="36" fill={text} class="node-type">
                {shorten(n.task.task_type, 16)}
                {state ? ` · ${state}` : ''}
              </text>
            </g>
          );
        })}
      </svg>
    </div>
  );
}
