// The desktop window's security decisions, after Electron's security checklist: window settings, the
// Content-Security-Policy, which messages and requests are trusted, which links may leave the app. Pure: only
// Electron's types are imported, so Vitest checks every decision without the Electron binary.
import type { BrowserWindowConstructorOptions, MenuItemConstructorOptions } from 'electron';

/**
 * The renderer's policy: only files of the app itself, nothing inline, no eval, no plugins, no frames. Pages read
 * from file:// carry no headers, so `renderer/index.html` states this in a `<meta http-equiv>` tag (a test keeps the
 * two equal); a meta policy cannot carry frame-ancestors, which the header form adds.
 */
export const RENDERER_META_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-src 'none'",
].join('; ');

export const CONTENT_SECURITY_POLICY = `${RENDERER_META_POLICY}; frame-ancestors 'none'`;

/** The main window: the renderer runs sandboxed and isolated, and reaches the main process only through the preload. */
export function windowOptions(preloadPath: string, packaged: boolean): BrowserWindowConstructorOptions {
  return {
    width: 1280,
    height: 800,
    minWidth: 960,
    minHeight: 640,
    title: 'PEFT Studio',
    // Shown at ready-to-show: no white flash before the first paint.
    show: false,
    webPreferences: {
      preload: preloadPath,
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      nodeIntegrationInSubFrames: false,
      webSecurity: true,
      webviewTag: false,
      experimentalFeatures: false,
      navigateOnDragDrop: false,
      safeDialogs: true,
      // An installed app has no DevTools: they would let anyone at the keyboard script the studio's API.
      devTools: !packaged,
    },
  };
}

/** The View menu: zoom and full screen; reload and DevTools only in a development build. */
export function viewMenu(packaged: boolean): MenuItemConstructorOptions {
  const development: MenuItemConstructorOptions[] = [
    { role: 'reload' },
    { role: 'toggleDevTools' },
    { type: 'separator' },
  ];
  const always: MenuItemConstructorOptions[] = [
    { role: 'resetZoom' },
    { role: 'zoomIn' },
    { role: 'zoomOut' },
    { type: 'separator' },
    { role: 'togglefullscreen' },
  ];
  return { label: 'View', submenu: packaged ? always : [...development, ...always] };
}

/** The folder the renderer is served from, as a file: URL ending in '/'. */
export function rendererFolderUrl(indexFileUrl: string): string {
  return new URL('.', indexFileUrl).href;
}

/** A file: URL inside our renderer folder, on no host (`file://server/...` is a network share). */
export function isRendererUrl(url: string | undefined, folderUrl: string): boolean {
  if (!url) return false;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return false;
  }
  // URL parsing has already resolved `..` and percent-encoded dot segments, so a prefix test cannot be walked out of.
  return parsed.protocol === 'file:' && parsed.host === '' && parsed.pathname.startsWith(new URL(folderUrl).pathname);
}

export interface MessageSender {
  /** webContents.id of the sender. */
  webContentsId: number;
  /** URL of the frame that sent the message; undefined when the frame is gone. */
  frameUrl: string | undefined;
  /** Sent from the top frame, not an iframe. */
  isMainFrame: boolean;
}

export interface TrustedRenderer {
  /** webContents.id of the main window. */
  webContentsId: number;
  folderUrl: string;
}

/** IPC is answered only for the main window's top frame showing one of our own files. */
export function isTrustedSender(sender: MessageSender, trusted: TrustedRenderer): boolean {
  return (
    sender.webContentsId === trusted.webContentsId &&
    sender.isMainFrame &&
    isRendererUrl(sender.frameUrl, trusted.folderUrl)
  );
}

/** Requests the window may make: its own files, inline images and the developer tools; nothing from a network. */
export function isAllowedRequest(url: string, folderUrl: string): boolean {
  if (url.startsWith('data:') || url.startsWith('devtools:')) return true;
  return isRendererUrl(url, folderUrl);
}

/** Links the app never opens itself but hands to the user's browser: https only (no file:, no custom schemes). */
export function externalLinkTarget(url: string): string | null {
  try {
    const parsed = new URL(url);
    return parsed.protocol === 'https:' ? parsed.href : null;
  } catch {
    return null;
  }
}
