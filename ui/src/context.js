// What every page reads: the caller, the chosen project, whether this is a proxy.
import { createContext } from 'preact';
import { useContext } from 'preact/hooks';

export const App = createContext(null);

export function useApp() {
  return useContext(App);
}
