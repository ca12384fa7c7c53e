// A loopback Hugging Face Hub (node:http on 127.0.0.1, random port) with the endpoints @huggingface/hub and the
// studio call: repo info, tree listing (paged with Link headers), resolve with Range and the LFS redirect to a CDN
// path, whoami-v2, repo creation, preupload, the LFS batch API (basic PUT and multipart), and NDJSON commits.
// Access rules follow the Hub: unknown token 401; private repos 401 without a token, 404 for others; gated repos
// 401/403 with X-Error-Code: GatedRepo on file downloads. Faults (statuses, dropped connections, wrong bytes, ignored
// ranges, redirects) are injected per path. A repo can be hostile, as a mirror HF_ENDPOINT points at may be: its
// commit sha and tree entries (paths, oids, sizes) say whatever the test wants. Every request is recorded, so tests
// can assert what was, and was not, asked.
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export type RepoType = 'model' | 'dataset';

export interface ServedCommit {
  sha: string;
  files: Map<string, Buffer>;
}

export interface ServedRepo {
  type: RepoType;
  name: string;
  private: boolean;
  gated: false | 'auto' | 'manual';
  /** Users who accepted a gated repo's conditions. */
  granted: Set<string>;
  /** Branches and tags: name to commit. */
  refs: Map<string, string>;
  commits: Map<string, ServedCommit>;
  cardData?: Record<string, unknown>;
  safetensorsTotal?: number;
  /** Commit request headers (summary...) in order, for assertions. */
  commitLog: { summary: string; sha: string }[];
  hostile?: Hostility;
}

/** What a hostile Hub says about a repo in place of the truth; the bytes it serves stay the repo's own. */
export interface Hostility {
  /**
   * The commit sha the revision endpoint answers with (any JSON value). The tree and resolve endpoints take it for
   * `main`; as `..` in it collapses the URLs built from it, every GET no route matches is answered from this repo too.
   */
  sha?: unknown;
  /** Fields of the tree entries replaced, by the file's real path: path, oid, size, lfs. */
  entries?: Record<string, Record<string, unknown>>;
  /** The tree listing's Link: rel="next" URL, on its first page (another host, to catch a token sent there). */
  nextPage?: string;
}

export interface Fault {
  /** Matched against the request path (query included). */
  path: RegExp;
  method?: string;
  /** How many matching requests it applies to (default 1). */
  times?: number;
  /** Answer with this status, headers and JSON body instead. */
  status?: number;
  headers?: Record<string, string>;
  json?: unknown;
  /** Send the full Content-Length, then only this many bytes of the body, then drop the connection. */
  dropAfter?: number;
  /** Send the full Content-Length, then only this many bytes of the body, then nothing more: a stalled connection. */
  stallAfter?: number;
  /** Serve these bytes instead of the stored ones (same length: a corrupt CDN copy). */
  body?: Buffer;
  /** Answer a ranged request with the whole file (200), as servers without range support do. */
  ignoreRange?: boolean;
  /** Answer 302 to this URL instead (another host, another scheme). */
  redirect?: string;
}

export interface RecordedRequest {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
}

export interface TokenInfo {
  user: string;
  role: 'read' | 'write' | 'fineGrained';
  orgs?: string[];
}

export interface HubServerOptions {
  /** LFS uploads larger than this use the multipart protocol. */
  multipartThreshold?: number;
  partSize?: number;
  /** Tree entries per page (the Link header points to the next). */
  pageSize?: number;
}

const LFS_EXTENSIONS = /\.(safetensors|parquet|gguf|bin|pth|png|onnx)$/;

export const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
export const gitSha1 = (data: Buffer) => createHash('sha1').update(`blob ${data.length}\0`).update(data).digest('hex');
const newSha = () => randomBytes(20).toString('hex');

/** Where the Hub keeps a file: LFS for binary or large content (and the usual binary extensions). */
export function isLfs(path: string, content: Buffer): boolean {
  return LFS_EXTENSIONS.test(path) || content.length > 10_000_000 || content.subarray(0, 512).includes(0);
}

function lfsPointer(content: Buffer): Buffer {
  return Buffer.from(
    `version https://git-lfs.github.com/spec/v1\noid sha256:${sha256(content)}\nsize ${content.length}\n`,
  );
}

class HttpAnswer extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
    readonly headers: Record<string, string> = {},
  ) {
    super(`HTTP ${status}`);
  }
}

const fail = (status: number, error: string, code?: string) =>
  new HttpAnswer(status, { error }, code ? { 'X-Error-Code': code } : {});

async function readBody(req: http.IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export class HubServer {
  url = '';
  readonly requests: RecordedRequest[] = [];
  readonly repos = new Map<string, ServedRepo>();
  readonly tokens = new Map<string, TokenInfo>();
  /** LFS objects by sha256, as uploaded (the "S3" side). */
  readonly lfsObjects = new Map<string, Buffer>();
  /** What the CDN serves, by sha256: the LFS files of every repo. */
  private readonly cdn = new Map<string, Buffer>();
  private readonly faults: Fault[] = [];
  private readonly parts = new Map<string, Buffer[]>();
  private readonly server: http.Server;

  constructor(private readonly options: HubServerOptions = {}) {
    this.server = http.createServer((req, res) => void this.handle(req, res));
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  addToken(token: string, info: TokenInfo): void {
    this.tokens.set(token, info);
  }

  /** Adds a repo whose `main` holds `files`; returns the commit sha. */
  addRepo(
    type: RepoType,
    name: string,
    files: Record<string, string | Buffer>,
    extra: Partial<Pick<ServedRepo, 'private' | 'gated' | 'cardData' | 'safetensorsTotal' | 'hostile'>> = {},
  ): string {
    const repo: ServedRepo = {
      type,
      name,
      private: false,
      gated: false,
      granted: new Set(),
      refs: new Map(),
      commits: new Map(),
      commitLog: [],
      ...extra,
    };
    this.repos.set(`${type}:${name}`, repo);
    return this.addCommit(type, name, 'main', files);
  }

  /** Points `ref` (a branch or tag) at a new commit holding exactly `files`; returns its sha. */
  addCommit(type: RepoType, name: string, ref: string, files: Record<string, string | Buffer>): string {
    const repo = this.repo(type, name);
    const sha = newSha();
    repo.commits.set(sha, {
      sha,
      files: new Map(Object.entries(files).map(([p, c]) => [p, Buffer.isBuffer(c) ? c : Buffer.from(c)])),
    });
    repo.refs.set(ref, sha);
    return sha;
  }

  repo(type: RepoType, name: string): ServedRepo {
    const repo = this.repos.get(`${type}:${name}`);
    if (!repo) throw new Error(`test server: no ${type} ${name}`);
    return repo;
  }

  /** A file of the repo at a ref (main by default). */
  file(type: RepoType, name: string, path: string, ref = 'main'): Buffer | undefined {
    const repo = this.repo(type, name);
    return repo.commits.get(repo.refs.get(ref)!)?.files.get(path);
  }

  fault(fault: Fault): void {
    this.faults.push({ times: 1, ...fault });
  }

  private takeFault(req: http.IncomingMessage): Fault | undefined {
    const fault = this.faults.find(
      (f) => f.path.test(req.url!) && (!f.method || f.method === req.method) && f.times! > 0,
    );
    if (fault) fault.times!--;
    return fault;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    this.requests.push({ method: req.method!, path: req.url!, headers: req.headers });
    try {
      const body = await readBody(req);
      const fault = this.takeFault(req);
      if (fault?.status) {
        res.writeHead(fault.status, { 'Content-Type': 'application/json', ...fault.headers });
        res.end(JSON.stringify(fault.json ?? { error: `injected ${fault.status}` }));
        return;
      }
      if (fault?.redirect) {
        res.writeHead(302, { Location: fault.redirect });
        res.end();
        return;
      }
      await this.route(req, res, body, fault);
    } catch (err) {
      const answer = err instanceof HttpAnswer ? err : new HttpAnswer(500, { error: (err as Error).message });
      if (!res.headersSent) res.writeHead(answer.status, { 'Content-Type': 'application/json', ...answer.headers });
      res.end(JSON.stringify(answer.body));
    }
  }

  private user(req: http.IncomingMessage): TokenInfo | null {
    const header = req.headers.authorization;
    if (!header) return null;
    const info = this.tokens.get(header.replace(/^Bearer /, ''));
    if (!info) throw fail(401, 'Invalid credentials in Authorization header');
    return info;
  }

  private owns(user: TokenInfo | null, name: string): boolean {
    const namespace = name.split('/')[0];
    return !!user && (user.user === namespace || !!user.orgs?.includes(namespace));
  }

  /** The repo as this caller may see it: missing or private-and-not-yours look the same, as on the Hub. */
  private visibleRepo(req: http.IncomingMessage, type: RepoType, name: string): ServedRepo {
    const user = this.user(req);
    const repo = this.repos.get(`${type}:${name}`);
    if (!repo || (repo.private && !this.owns(user, name))) {
      throw user
        ? fail(404, 'Repository not found', 'RepoNotFound')
        : fail(401, 'Repository not found', 'RepoNotFound');
    }
    return repo;
  }

  private commitOf(repo: ServedRepo, revision: string): ServedCommit {
    const hostileSha = repo.hostile?.sha !== undefined && revision === repo.hostile.sha;
    const sha = repo.refs.get(revision === 'HEAD' || hostileSha ? 'main' : revision) ?? revision;
    const commit = repo.commits.get(sha);
    if (!commit) throw fail(404, `Invalid rev id: ${revision}`, 'RevisionNotFound');
    return commit;
  }

  private async route(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    body: Buffer,
    fault: Fault | undefined,
  ): Promise<void> {
    const url = new URL(req.url!, this.url);
    const p = decodeURIComponent(url.pathname);
    let m: RegExpExecArray | null;
    const typeOf = (plural: string): RepoType => (plural === 'datasets' ? 'dataset' : 'model');
    const send = (status: number, json: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
      res.end(JSON.stringify(json));
    };

    if (req.method === 'GET' && p === '/api/whoami-v2') {
      const user = this.user(req);
      if (!user) throw fail(401, 'Invalid username or password.');
      return send(200, {
        type: 'user',
        name: user.user,
        fullname: user.user,
        orgs: (user.orgs ?? []).map((name) => ({ type: 'org', name })),
        auth: {
          type: 'access_token',
          accessToken: { displayName: 'test', role: user.role, createdAt: new Date().toISOString() },
        },
      });
    }

    if (req.method === 'POST' && p === '/api/repos/create') {
      const user = this.user(req);
      const payload = JSON.parse(body.toString());
      const name = `${payload.organization ?? user?.user}/${payload.name}`;
      if (!user || user.role === 'read' || !this.owns(user, name))
        throw fail(user ? 403 : 401, `You don't have the rights to create a repo under ${name.split('/')[0]}`);
      const type: RepoType = payload.type ?? 'model';
      if (this.repos.has(`${type}:${name}`))
        throw new HttpAnswer(409, { error: `You already created this ${type} repo`, url: `${this.url}/${name}` });
      this.addRepo(
        type,
        name,
        { '.gitattributes': '*.safetensors filter=lfs diff=lfs merge=lfs -text\n' },
        { private: payload.visibility === 'private' },
      );
      return send(200, { url: `${this.url}/${name}`, name, id: `id-${name}` });
    }

    if (req.method === 'GET' && (m = /^\/api\/(models|datasets)\/([^/]+\/[^/]+)\/revision\/(.+)$/.exec(p))) {
      const repo = this.visibleRepo(req, typeOf(m[1]), m[2]);
      const commit = this.commitOf(repo, m[3]);
      const sha = repo.hostile && 'sha' in repo.hostile ? repo.hostile.sha : commit.sha;
      return send(200, {
        _id: `id-${repo.name}`,
        id: repo.name,
        sha,
        private: repo.private,
        gated: repo.gated,
        downloads: 0,
        likes: 0,
        lastModified: new Date().toISOString(),
        pipeline_tag: 'text-generation',
        siblings: [...commit.files.keys()].map((rfilename) => ({ rfilename })),
        cardData: repo.cardData,
        safetensors:
          repo.safetensorsTotal === undefined
            ? undefined
            : { total: repo.safetensorsTotal, parameters: { BF16: repo.safetensorsTotal } },
      });
    }

    if (req.method === 'GET' && (m = /^\/api\/(models|datasets)\/([^/]+\/[^/]+)\/tree\/([^/]+)(?:\/(.*))?$/.exec(p))) {
      const repo = this.visibleRepo(req, typeOf(m[1]), m[2]);
      const commit = this.commitOf(repo, m[3]);
      const entries = this.treeEntries(repo, commit, m[4] ?? '', url.searchParams.get('recursive') === 'true');
      const start = Number(url.searchParams.get('cursor') ?? 0);
      const pageSize = this.options.pageSize ?? 1000;
      const headers: Record<string, string> = {};
      if (start + pageSize < entries.length) {
        const next = new URL(url);
        next.searchParams.set('cursor', String(start + pageSize));
        headers.Link = `<${next.href}>; rel="next"`;
      }
      if (repo.hostile?.nextPage && start === 0) headers.Link = `<${repo.hostile.nextPage}>; rel="next"`;
      return send(200, entries.slice(start, start + pageSize), headers);
    }

    if (req.method === 'GET' && (m = /^\/(?:(datasets)\/)?([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(p))) {
      const type: RepoType = m[1] ? 'dataset' : 'model';
      const repo = this.visibleRepo(req, type, m[2]);
      if (repo.gated) {
        const user = this.user(req);
        if (!user)
          throw new HttpAnswer(
            401,
            {
              error: `Access to model ${repo.name} is restricted. You must have access to it and be authenticated to access it. Please log in.`,
            },
            { 'X-Error-Code': 'GatedRepo' },
          );
        if (!repo.granted.has(user.user))
          throw new HttpAnswer(
            403,
            {
              error: `Access to model ${repo.name} is restricted and you are not in the authorized list. Visit ${this.url}/${repo.name} to ask for access.`,
            },
            { 'X-Error-Code': 'GatedRepo' },
          );
      }
      const commit = this.commitOf(repo, m[3]);
      const content = commit.files.get(m[4]);
      if (!content) throw fail(404, 'Entry not found', 'EntryNotFound');
      const common = { 'X-Repo-Commit': commit.sha };
      if (isLfs(m[4], content)) {
        const oid = sha256(content);
        this.cdn.set(oid, content);
        res.writeHead(302, {
          ...common,
          Location: `/cdn/${oid}?filename=${encodeURIComponent(m[4])}`,
          'X-Linked-Etag': `"${oid}"`,
          'X-Linked-Size': String(content.length),
          ETag: `"${gitSha1(lfsPointer(content))}"`,
        });
        res.end();
        return;
      }
      return this.serveBytes(req, res, content, { ...common, ETag: `"${gitSha1(content)}"` }, fault);
    }

    if (req.method === 'GET' && (m = /^\/cdn\/([0-9a-f]{64})$/.exec(p))) {
      const content = this.cdn.get(m[1]);
      if (!content) throw fail(404, 'NoSuchKey');
      return this.serveBytes(req, res, content, { ETag: `"${m[1]}"` }, fault);
    }

    if (req.method === 'POST' && (m = /^\/api\/(models|datasets)\/([^/]+\/[^/]+)\/preupload\/(.+)$/.exec(p))) {
      this.writableRepo(req, typeOf(m[1]), m[2]);
      const payload = JSON.parse(body.toString()) as { files: { path: string; size: number; sample: string }[] };
      return send(200, {
        files: payload.files.map((f) => ({
          path: f.path,
          uploadMode: isLfs(f.path, Buffer.from(f.sample, 'base64')) || f.size > 10_000_000 ? 'lfs' : 'regular',
          shouldIgnore: false,
        })),
      });
    }

    if (req.method === 'POST' && (m = /^\/(?:(datasets)\/)?([^/]+\/[^/]+)\.git\/info\/lfs\/objects\/batch$/.exec(p))) {
      this.writableRepo(req, m[1] ? 'dataset' : 'model', m[2]);
      const payload = JSON.parse(body.toString()) as { objects: { oid: string; size: number }[] };
      const threshold = this.options.multipartThreshold ?? Infinity;
      const partSize = this.options.partSize ?? 5_000_000;
      return send(
        200,
        {
          transfer: 'basic',
          objects: payload.objects.map(({ oid, size }) => {
            if (this.lfsObjects.has(oid)) return { oid, size };
            if (size <= threshold)
              return { oid, size, actions: { upload: { href: `${this.url}/lfs-storage/${oid}`, header: {} } } };
            const parts = Math.ceil(size / partSize);
            const header: Record<string, string> = { chunk_size: String(partSize) };
            for (let i = 1; i <= parts; i++)
              header[String(i).padStart(5, '0')] = `${this.url}/lfs-storage/${oid}/part/${i}`;
            return { oid, size, actions: { upload: { href: `${this.url}/lfs-storage/${oid}/complete`, header } } };
          }),
        },
        { 'Content-Type': 'application/vnd.git-lfs+json' },
      );
    }

    if (req.method === 'PUT' && (m = /^\/lfs-storage\/([0-9a-f]{64})$/.exec(p))) {
      if (sha256(body) !== m[1]) throw fail(400, 'content does not match its oid');
      this.lfsObjects.set(m[1], body);
      return send(200, {}, { ETag: `"${createHash('md5').update(body).digest('hex')}"` });
    }

    if (req.method === 'PUT' && (m = /^\/lfs-storage\/([0-9a-f]{64})\/part\/(\d+)$/.exec(p))) {
      const parts = this.parts.get(m[1]) ?? [];
      parts[Number(m[2]) - 1] = body;
      this.parts.set(m[1], parts);
      return send(200, {}, { ETag: `"part-${m[2]}-${createHash('md5').update(body).digest('hex')}"` });
    }

    if (req.method === 'POST' && (m = /^\/lfs-storage\/([0-9a-f]{64})\/complete$/.exec(p))) {
      const payload = JSON.parse(body.toString()) as { oid: string; parts: { partNumber: number; etag: string }[] };
      const parts = this.parts.get(m[1]) ?? [];
      if (payload.parts.some((part) => !part.etag.startsWith(`"part-${part.partNumber}-`)))
        throw fail(400, 'wrong part etags');
      const content = Buffer.concat(parts);
      if (sha256(content) !== m[1]) throw fail(400, 'assembled parts do not match the oid');
      this.lfsObjects.set(m[1], content);
      return send(200, {});
    }

    if (req.method === 'POST' && (m = /^\/api\/(models|datasets)\/([^/]+\/[^/]+)\/commit\/(.+)$/.exec(p))) {
      const repo = this.writableRepo(req, typeOf(m[1]), m[2]);
      const parent = this.commitOf(repo, m[3]);
      const files = new Map(parent.files);
      let summary = '';
      for (const line of body.toString().split('\n').filter(Boolean)) {
        const { key, value } = JSON.parse(line);
        if (key === 'header') summary = value.summary;
        else if (key === 'file')
          files.set(value.path, Buffer.from(value.content, value.encoding === 'base64' ? 'base64' : 'utf8'));
        else if (key === 'lfsFile') {
          const content = this.lfsObjects.get(value.oid);
          if (!content || content.length !== value.size)
            throw fail(422, `LFS object ${value.oid} of ${value.path} was not uploaded`);
          files.set(value.path, content);
        } else if (key === 'deletedFile') files.delete(value.path);
        else throw fail(400, `unknown commit key ${key}`);
      }
      const sha = newSha();
      repo.commits.set(sha, { sha, files });
      repo.refs.set(m[3], sha);
      repo.commitLog.push({ summary, sha });
      return send(200, {
        success: true,
        commitOid: sha,
        commitUrl: `${this.url}/${repo.name}/commit/${sha}`,
        hookOutput: '',
      });
    }

    // A hostile sha such as ../../x collapses the URLs the client builds from it: answer them as a hostile Hub would.
    const anything = [...this.repos.values()].find((r) => r.hostile?.sha !== undefined);
    if (req.method === 'GET' && anything) {
      const commit = this.commitOf(anything, 'main');
      if (url.searchParams.has('recursive')) return send(200, this.treeEntries(anything, commit, '', true));
      const file = [...commit.files.keys()].find((f) => p.endsWith(`/${f}`));
      if (file) return this.serveBytes(req, res, commit.files.get(file)!, {}, fault);
    }
    throw fail(404, `test server: no route for ${req.method} ${p}`);
  }

  private writableRepo(req: http.IncomingMessage, type: RepoType, name: string): ServedRepo {
    const user = this.user(req);
    const repo = this.visibleRepo(req, type, name);
    if (!user || user.role === 'read' || !this.owns(user, name))
      throw fail(403, `You have read access but not the required permissions for this operation on ${name}`);
    return repo;
  }

  private treeEntries(repo: ServedRepo, commit: ServedCommit, prefix: string, recursive: boolean): unknown[] {
    const entries: unknown[] = [];
    const dirs = new Set<string>();
    for (const [path, content] of [...commit.files].sort(([a], [b]) => a.localeCompare(b))) {
      if (prefix && !path.startsWith(`${prefix}/`)) continue;
      const rest = prefix ? path.slice(prefix.length + 1) : path;
      const parts = rest.split('/');
      for (let i = 1; i < parts.length && (recursive || i === 1); i++) {
        const dir = [prefix, ...parts.slice(0, i)].filter(Boolean).join('/');
        if (!dirs.has(dir)) {
          dirs.add(dir);
          entries.push({ type: 'directory', oid: gitSha1(Buffer.from(dir)), size: 0, path: dir });
        }
      }
      if (!recursive && parts.length > 1) continue;
      const lfs = isLfs(path, content);
      entries.push({
        type: 'file',
        path,
        size: content.length,
        oid: gitSha1(lfs ? lfsPointer(content) : content),
        ...(lfs && { lfs: { oid: sha256(content), size: content.length, pointerSize: lfsPointer(content).length } }),
        ...repo.hostile?.entries?.[path],
      });
    }
    return entries;
  }

  /** 200 or 206 with Content-Range; faults can cut the body short, swap its bytes or ignore the range. */
  private serveBytes(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    stored: Buffer,
    headers: Record<string, string>,
    fault: Fault | undefined,
  ): void {
    const content = fault?.body ?? stored;
    const range = fault?.ignoreRange ? null : /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    let start = 0;
    let end = content.length - 1;
    if (range) {
      start = Number(range[1]);
      if (range[2]) end = Math.min(end, Number(range[2]));
      if (start >= content.length) {
        res.writeHead(416, { 'Content-Range': `bytes */${content.length}` });
        res.end();
        return;
      }
    }
    const slice = content.subarray(start, end + 1);
    res.writeHead(range ? 206 : 200, {
      ...headers,
      'Content-Type': 'application/octet-stream',
      'Accept-Ranges': 'bytes',
      'Content-Length': String(slice.length),
      ...(range && { 'Content-Range': `bytes ${start}-${end}/${content.length}` }),
    });
    if (fault?.stallAfter !== undefined) {
      res.write(slice.subarray(0, fault.stallAfter)); // the socket stays open until the client gives up or close()
      return;
    }
    if (fault?.dropAfter !== undefined) {
      // Drop a moment after the bytes are out, as a real connection does, so the client has read them: a stream
      // errored at once discards the chunks it had queued but not yet handed over.
      res.write(slice.subarray(0, fault.dropAfter), () => setTimeout(() => res.socket?.destroy(), 100));
      return;
    }
    res.end(slice);
  }
}

export async function startHubServer(options: HubServerOptions = {}): Promise<HubServer> {
  return new HubServer(options).start();
}
