// The desktop app's main process: one window, the IPC wiring, pickers, menu, progress bar and notifications. Thin
// on purpose: every decision lives in security.ts, ipc.ts and runSignals.ts (tested without Electron); the studio
// itself is createStudioApi on a worker thread (startStudio), the same API `peft-studio serve` answers in browser
// mode. Training runs in the engine's own process (main/engine/process/host.ts), never on this thread.
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  app,
  BrowserWindow,
  dialog,
  ipcMain,
  Menu,
  Notification,
  safeStorage,
  session,
  shell,
  type IpcMainInvokeEvent,
  type MenuItemConstructorOptions,
} from 'electron';
import { startStudio, type HostedStudio } from '../studio/studioHost.js';
import { encryptedTokenVault, memoryTokenVault, type TokenVault } from '../studio/services/tokenVault.js';
import { defaultStudioHome } from '../store/home.js';
import { answerCall, answerPick, CHANNELS, openDialogProperties, type CheckedPickRequest } from './ipc.js';
import { progressBarValue, runNotification } from './runSignals.js';
import {
  CONTENT_SECURITY_POLICY,
  externalLinkTarget,
  isAllowedRequest,
  rendererFolderUrl,
  viewMenu,
  windowOptions,
  type MessageSender,
  type TrustedRenderer,
} from './security.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PRELOAD = path.join(HERE, 'preload.cjs');
const RENDERER_INDEX = path.resolve(HERE, '../../renderer/index.html');
const RENDERER_FOLDER_URL = rendererFolderUrl(pathToFileURL(RENDERER_INDEX).href);

/** The OS key store encrypts the Hub token; where there is none (Linux's basic_text fallback) it stays in memory. */
function desktopTokenVault(home: string): TokenVault {
  const encrypted =
    safeStorage.isEncryptionAvailable() &&
    (process.platform !== 'linux' || safeStorage.getSelectedStorageBackend() !== 'basic_text');
  return encrypted ? encryptedTokenVault(path.join(home, 'hf-token.enc'), safeStorage) : memoryTokenVault();
}

function senderOf(event: IpcMainInvokeEvent): MessageSender {
  return {
    webContentsId: event.sender.id,
    frameUrl: event.senderFrame?.url,
    isMainFrame: event.senderFrame === event.sender.mainFrame,
  };
}

/**
 * Every web contents, present or future: no webviews, no navigation, no new windows (https links go to the browser).
 */
function lockDownWebContents(): void {
  app.on('web-contents-created', (_event, contents) => {
    contents.on('will-attach-webview', (event) => event.preventDefault());
    contents.on('will-navigate', (event) => event.preventDefault());
    contents.on('will-redirect', (event) => event.preventDefault());
    contents.setWindowOpenHandler(({ url }) => {
      const external = externalLinkTarget(url);
      if (external) void shell.openExternal(external);
      return { action: 'deny' };
    });
  });
}

/** The default session: no permissions, no remote requests, and the CSP on anything that does carry headers. */
function lockDownSession(): void {
  const ses = session.defaultSession;
  ses.setPermissionRequestHandler((_contents, _permission, grant) => grant(false));
  ses.setPermissionCheckHandler(() => false);
  ses.webRequest.onBeforeRequest((details, respond) =>
    respond({ cancel: !isAllowedRequest(details.url, RENDERER_FOLDER_URL) }),
  );
  ses.webRequest.onHeadersReceived((details, respond) =>
    respond({ responseHeaders: { ...details.responseHeaders, 'Content-Security-Policy': [CONTENT_SECURITY_POLICY] } }),
  );
}

function buildMenu(home: string): Menu {
  const template: MenuItemConstructorOptions[] = [
    ...(process.platform === 'darwin' ? [{ role: 'appMenu' } as const] : []),
    {
      label: 'File',
      submenu: [
        { label: 'Open Studio Folder', click: () => void shell.openPath(home) },
        { type: 'separator' },
        process.platform === 'darwin' ? { role: 'close' } : { role: 'quit' },
      ],
    },
    { role: 'editMenu' },
    viewMenu(app.isPackaged),
    { role: 'windowMenu' },
  ];
  return Menu.buildFromTemplate(template);
}

function createWindow(api: HostedStudio): BrowserWindow {
  const win = new BrowserWindow(windowOptions(PRELOAD, app.isPackaged));
  win.once('ready-to-show', () => win.show());
  const trusted: TrustedRenderer = { webContentsId: win.webContents.id, folderUrl: RENDERER_FOLDER_URL };

  const choose = async (request: CheckedPickRequest): Promise<string | null> => {
    const chosen = await dialog.showOpenDialog(win, {
      title: request.title,
      properties: openDialogProperties(request),
      filters: request.filters,
    });
    return chosen.canceled ? null : (chosen.filePaths[0] ?? null);
  };
  const confirm = async (question: string): Promise<boolean> => {
    const answer = await dialog.showMessageBox(win, {
      type: 'warning',
      message: question,
      buttons: ['Keep it', 'Delete'],
      defaultId: 0,
      cancelId: 0,
    });
    return answer.response === 1;
  };
  ipcMain.handle(CHANNELS.call, (event, method: unknown, params: unknown) =>
    answerCall(api, trusted, senderOf(event), method, params, confirm),
  );
  ipcMain.handle(CHANNELS.pick, (event, request: unknown) => answerPick(choose, trusted, senderOf(event), request));

  const unsubscribe = api.subscribe((event) => {
    if (win.isDestroyed()) return;
    win.webContents.send(CHANNELS.event, event);
    const progress = progressBarValue(event);
    if (progress !== null) win.setProgressBar(progress);
    const notice = runNotification(event);
    if (notice && Notification.isSupported()) new Notification(notice).show();
  });
  win.on('closed', () => {
    unsubscribe();
    ipcMain.removeHandler(CHANNELS.call);
    ipcMain.removeHandler(CHANNELS.pick);
  });

  void win.loadFile(RENDERER_INDEX);
  return win;
}

async function start(): Promise<void> {
  // A second instance would open the same store and run manager: hand over to the first one instead.
  if (!app.requestSingleInstanceLock()) return app.quit();
  app.enableSandbox();
  lockDownWebContents();
  await app.whenReady();
  lockDownSession();

  const home = defaultStudioHome();
  let api: HostedStudio;
  try {
    // The studio (store, run manager, generation) runs on a worker thread: this thread only draws and forwards.
    api = await startStudio({ home, tokenVault: desktopTokenVault(home) });
  } catch (err) {
    // A store the app cannot open (a newer version's, an unwritable folder, another studio's) ends the start with the
    // reason, not a hang.
    dialog.showErrorBox('PEFT Studio cannot start', `${home}: ${(err as Error).message}`);
    return app.exit(1);
  }
  void api.stopped.then((died) => {
    if (!died) return;
    dialog.showErrorBox(
      'PEFT Studio stopped',
      `${died.message}. Runs resume from their last checkpoint at the next start.`,
    );
    app.exit(1);
  });
  Menu.setApplicationMenu(buildMenu(home));
  let win = createWindow(api);

  app.on('second-instance', () => {
    if (win.isDestroyed()) win = createWindow(api);
    else if (win.isMinimized()) win.restore();
    win.focus();
  });
  // macOS keeps the app (and its runs) alive without windows; the dock icon reopens one.
  app.on('activate', () => {
    if (BrowserWindow.getAllWindows().length === 0) win = createWindow(api);
  });
  app.on('window-all-closed', () => {
    if (process.platform !== 'darwin') app.quit();
  });
  // Quitting pauses running runs at a checkpoint (resumable on the next start) before the process ends.
  let shutdown: 'running' | 'closing' | 'closed' = 'running';
  app.on('before-quit', (event) => {
    if (shutdown === 'closed') return;
    event.preventDefault();
    if (shutdown === 'closing') return;
    shutdown = 'closing';
    void api.close().finally(() => {
      shutdown = 'closed';
      app.quit();
    });
  });
}

void start();
