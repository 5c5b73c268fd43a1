// Hash routes (`#/instances/7?state=failed`): the server serves one page at `/`, and a
// link is a plain anchor, so routes work with the keyboard, history and new tabs.
import { useEffect, useState } from 'preact/hooks';

function parse() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, qs] = raw.split('?');
  return {
    parts: path
      .split('/')
      .filter(Boolean)
      .map((p) => {
        try {
          return decodeURIComponent(p);
        } catch {
          return p;
        }
      }),
    query: Object.fromEntries(new URLSearchParams(qs || '')),
  };
}

export function useRoute() {
  const [route, setRoute] = useState(parse);
  useEffect(() => {
    const on = () => setRoute(parse());
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return route;
}

export function go(path, query) {
  const qs = query ? new URLSearchParams(Object.entries(query).filter(([, v]) => v !== '' && v !== undefined && v !== null)).toString() : '';
  location.hash = `#${path}${qs ? `?${qs}` : ''}`;
}

export function href(path) {
  return `#${path}`;
}
