// The app-wide state every screen reads: the transport, what the main process said about itself, and the route.
import { getContext } from 'svelte';
import type { AppInfo, DeviceInfo, Result, StudioApi, StudioSettings } from '../../../shared/api.js';
import { errorMessage, type PathPicker } from './client.js';
import { parseRoute, routeHash, type Route } from './route.js';

export class Studio {
  info = $state<AppInfo | null>(null);
  settings = $state<StudioSettings | null>(null);
  devices = $state<DeviceInfo[]>([]);
  demo = $state<Result<'demo.paths'> | null>(null);
  route = $state<Route>({ screen: 'home' });
  /** A failure no screen owns (the first load), shown in the banner. */
  loadError = $state<string | null>(null);
  /** False while the main process cannot be reached (browser mode: the server stopped or is restarting). */
  connected = $state(true);
  /** How many times the connection came back: screens read their data again when it changes. */
  reconnections = $state(0);

  constructor(
    readonly api: StudioApi,
    /** Native dialogs in Electron; null in a browser. */
    readonly picker: PathPicker | null,
  ) {}

  /** Follows the connection for the banner; returns the listener's remover. */
  followConnection(): () => void {
    return (
      this.api.connection?.((connected) => {
        if (connected && !this.connected) {
          this.reconnections += 1;
          // The first load may have failed while the server was away.
          if (this.loadError !== null) void this.load();
        }
        this.connected = connected;
      }) ?? (() => {})
    );
  }

  async load(): Promise<void> {
    this.loadError = null;
    try {
      [this.info, this.settings, this.devices, this.demo] = await Promise.all([
        this.api.call('app.info', {}),
        this.api.call('settings.get', {}),
        this.api.call('devices.list', {}),
        this.api.call('demo.paths', {}),
      ]);
    } catch (err) {
      this.loadError = errorMessage(err);
    }
  }

  /** Keeps `route` in step with the address bar's hash; returns the listener's remover. */
  followHash(win: Window): () => void {
    const update = () => (this.route = parseRoute(win.location.hash));
    update();
    win.addEventListener('hashchange', update);
    return () => win.removeEventListener('hashchange', update);
  }

  navigate(route: Route): void {
    window.location.hash = routeHash(route);
  }
}

const STUDIO_KEY = Symbol('studio');

/** The context `mount` hands the app, so every component finds the studio with useStudio. */
export function studioContext(studio: Studio): Map<symbol, Studio> {
  // Handed to mount once and never changed: nothing to react to.
  // eslint-disable-next-line svelte/prefer-svelte-reactivity
  return new Map([[STUDIO_KEY, studio]]);
}

export function useStudio(): Studio {
  return getContext<Studio>(STUDIO_KEY);
}
