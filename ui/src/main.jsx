// The app shell: token sign-in, the project switcher, navigation and hash routes.

import { render } from 'preact';
import { useCallback, useEffect, useState } from 'preact/hooks';
import { get, setToken, token, whenUnauthenticated } from './api.js';
import { App as AppContext } from './context.js';
import { ErrorBox } from './components/ui.jsx';
import { useRoute, go } from './router.js';
import { Workflows } from './pages/Workflows.jsx';
import { WorkflowDetail } from './pages/WorkflowDetail.jsx';
import { Instances } from './pages/Instances.jsx';
import { InstanceDetail } from './pages/InstanceDetail.jsx';
import { TaskLog } from './pages/TaskLog.jsx';
import { Schedules } from './pages/Schedules.jsx';
import { Plugins } from './pages/Plugins.jsx';
import { Nodes } from './pages/Nodes.jsx';
import { Admin } from './pages/Admin.jsx';
import { Settings } from './pages/Settings.jsx';
import './style.css';

const PROJECT_KEY = 'shoal.project';

function SignIn({ onSignedIn, reason }) {
  const [value, setValue] = useState('');
  const [error, setError] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    setToken(value.trim());
    try {
      const me = await get('/me');
      onSignedIn(me);
    } catch (err) {
      setToken(null);
      setError(err);
    }
  };
  return (
    <main class="signin">
      <form onSubmit={submit} aria-label="Sign in">
        <h1>Shoal</h1>
        <p>Sign in with an API token. It is kept in this browser tab only and forgotten when the tab closes.</p>
        {reason ? <p class="muted">{reason}</p> : null}
        <label class="field">
          <span class="label">API token</span>
          <input
            type="password"
            name="token"
            aria-label="API token"
            autocomplete="off"
            autofocus
            value={value}
            onInput={(e) => setValue(e.target.value)}
            placeholder="shoal_…"
          />
        </label>
        <ErrorBox error={error} />
        <button type="submit" class="primary" disabled={!value.trim()}>
          Sign in
        </button>
        <p class="hint">
          The first admin's token is printed once when <code>shoal server</code> first starts; an admin makes more
          under Admin.
        </p>
      </form>
    </main>
  );
}

/// Says once, in text, why some buttons are disabled (their tooltips say it per button,
/// but a disabled button cannot be focused by keyboard).
function LevelNote({ me, project }) {
  if (me.role === 'admin' || !project) return null;
  const level = me.projects[project];
  if (level === 'edit') return null;
  return (
    <p class="level-note" role="note">
      You hold <strong>{level || 'no'}</strong> permission on {project}
      {level === 'read' ? ': running, operating and editing are disabled.' : level === 'operate' ? ': editing definitions, schedules and settings is disabled.' : '.'}{' '}
      Admin-only actions (plugins, users) are disabled too.
    </p>
  );
}

const NAV = [
  ['workflows', 'Workflows'],
  ['instances', 'Instances'],
  ['schedules', 'Schedules'],
  ['plugins', 'Plugins'],
  ['nodes', 'Nodes'],
  ['settings', 'Secrets & datasources'],
  ['admin', 'Admin'],
];

function Page({ route }) {
  const [name, a, b] = route.parts;
  switch (name) {
    case 'workflows':
      return a ? <WorkflowDetail name={a} tab={b || 'dag'} query={route.query} /> : <Workflows />;
    case 'instances':
      return a ? <InstanceDetail id={Number(a)} /> : <Instances query={route.query} />;
    case 'tasks':
      return <TaskLog id={Number(a)} />;
    case 'schedules':
      return <Schedules />;
    case 'plugins':
      return <Plugins />;
    case 'nodes':
      return <Nodes />;
    case 'admin':
      return <Admin />;
    case 'settings':
      return <Settings />;
    default:
      return <Workflows />;
  }
}

function Shell() {
  const [me, setMe] = useState(null);
  const [checked, setChecked] = useState(false);
  const [reason, setReason] = useState('');
  const [projects, setProjects] = useState([]);
  const [project, setProjectState] = useState(sessionStorage.getItem(PROJECT_KEY) || '');
  const [isProxy, setIsProxy] = useState(false);
  const [loadError, setLoadError] = useState(null);
  const route = useRoute();

  const setProject = useCallback((p) => {
    sessionStorage.setItem(PROJECT_KEY, p);
    setProjectState(p);
  }, []);

  const refresh = useCallback(async () => {
    try {
      const [m, ps, status] = await Promise.all([
        get('/me'),
        get('/projects'),
        get('/clusters').then(
          () => true,
          () => false,
        ),
      ]);
      setMe(m);
      setProjects(ps);
      setIsProxy(status);
      setLoadError(null);
      setProjectState((cur) => (ps.some((p) => p.name === cur) ? cur : ps[0]?.name || ''));
    } catch (e) {
      setLoadError(e);
    }
  }, []);

  useEffect(() => {
    whenUnauthenticated((message) => {
      setToken(null);
      setMe(null);
      setReason(`Signed out: ${message}`);
    });
    if (token()) refresh().finally(() => setChecked(true));
    else setChecked(true);
  }, []);

  if (!checked) return null;
  if (!me) {
    return (
      <SignIn
        reason={reason}
        onSignedIn={(m) => {
          setReason('');
          setMe(m);
          refresh();
        }}
      />
    );
  }
  const current = route.parts[0] || 'workflows';
  return (
    <AppContext.Provider value={{ me, project, setProject, projects, isProxy, refresh }}>
      <header class="top">
        <a class="brand" href="#/workflows">
          Shoal{isProxy ? ' · proxy' : ''}
        </a>
        <nav aria-label="Main">
          {NAV.map(([id, label]) => (
            <a key={id} href={`#/${id}`} class={current === id ? 'active' : ''} aria-current={current === id ? 'page' : undefined}>
              {label}
            </a>
          ))}
        </nav>
        <label class="project-switch">
          <span>Project</span>
          <select
            aria-label="Project"
            value={project}
            onChange={(e) => {
              setProject(e.target.value);
              if (['workflows', 'instances'].includes(current) && route.parts.length > 1) go(`/${current}`);
            }}
          >
            {projects.length === 0 ? <option value="">no project</option> : null}
            {projects.map((p) => (
              <option key={p.name} value={p.name}>
                {p.name}
                {me.role === 'admin' ? '' : ` (${me.projects[p.name] || 'read'})`}
              </option>
            ))}
          </select>
        </label>
        <span class="who" title={`role: ${me.role}`}>
          {me.name}
          {me.role === 'admin' ? ' (admin)' : project && me.projects[project] ? ` (${me.projects[project]})` : ''}
        </span>
        <button
          type="button"
          onClick={() => {
            setToken(null);
            setMe(null);
            setReason('Signed out.');
          }}
        >
          Sign out
        </button>
      </header>
      <main class="page">
        <ErrorBox error={loadError} />
        <LevelNote me={me} project={project} />
        <Page key={project} route={route} />
      </main>
    </AppContext.Provider>
  );
}

render(<Shell />, document.getElementById('app'));
