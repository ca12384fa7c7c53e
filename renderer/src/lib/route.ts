// Hash routes (#/runs/3): they survive a reload, work from file:// in Electron, and leave the ?token= query alone.

export type Route =
  | { screen: 'home' }
  | { screen: 'new' }
  | { screen: 'run'; runId: number }
  | { screen: 'playground'; adapterId: number | null }
  | { screen: 'library' }
  | { screen: 'export'; adapterId: number | null }
  | { screen: 'settings' };

export function parseRoute(hash: string): Route {
  const parts = hash.replace(/^#\/?/, '').split('/').filter(Boolean);
  const id = parts[1] !== undefined && /^\d+$/.test(parts[1]) ? Number(parts[1]) : null;
  switch (parts[0]) {
    case 'new':
      return { screen: 'new' };
    case 'runs':
      return id === null ? { screen: 'library' } : { screen: 'run', runId: id };
    case 'playground':
      return { screen: 'playground', adapterId: id };
    case 'library':
      return { screen: 'library' };
    case 'export':
      return { screen: 'export', adapterId: id };
    case 'settings':
      return { screen: 'settings' };
    default:
      return { screen: 'home' };
  }
}

export function routeHash(route: Route): string {
  switch (route.screen) {
    case 'home':
      return '#/';
    case 'new':
      return '#/new';
    case 'run':
      return `#/runs/${route.runId}`;
    case 'playground':
      return route.adapterId === null ? '#/playground' : `#/playground/${route.adapterId}`;
    case 'library':
      return '#/library';
    case 'export':
      return route.adapterId === null ? '#/export' : `#/export/${route.adapterId}`;
    case 'settings':
      return '#/settings';
  }
}
