#!/usr/bin/env node
// Serve the built app on this machine, with the headers that let the model use several threads.
//
//   node scripts/serve.mjs [--dir dist] [--port 8080] [--host 127.0.0.1]
//
// http://localhost counts as a secure context, so the app installs and its service worker runs from here;
// a phone reaches it over USB with `adb reverse tcp:8080 tcp:8080`. COOP + COEP make the page
// cross-origin isolated, which gives onnxruntime-web its threads (SharedArrayBuffer).
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.webmanifest': 'application/manifest+json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.txt': 'text/plain; charset=utf-8',
  '.onnx': 'application/octet-stream',
};
const HEADERS = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'X-Content-Type-Options': 'nosniff',
  'Cache-Control': 'no-cache', // revalidate, so a new build reaches the service worker
};

function resolve(dir, urlPath) {
  let rel;
  try {
    rel = decodeURIComponent(urlPath.split('?')[0]);
  } catch {
    return null;
  }
  if (rel.endsWith('/')) rel += 'index.html';
  const file = path.resolve(dir, `.${rel}`);
  return file.startsWith(dir + path.sep) ? file : null; // nothing outside the served folder
}

/** Start serving `dir`; resolves to {server, url, close()}. port 0 picks a free one. */
export function serve({ dir = path.join(ROOT, 'dist'), port = 8080, host = '127.0.0.1' } = {}) {
  dir = path.resolve(dir);
  if (!fs.existsSync(path.join(dir, 'index.html'))) {
    return Promise.reject(new Error(`${dir} has no index.html: build the app first (npm run build)`));
  }
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    const file = req.method === 'GET' || req.method === 'HEAD' ? resolve(dir, req.url) : null;
    let stat = null;
    try {
      stat = file && fs.statSync(file);
    } catch {
      stat = null;
    }
    if (!stat?.isFile()) {
      res.writeHead(404, { ...HEADERS, 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('not found\n');
      return;
    }
    const type = TYPES[path.extname(file)] ?? 'application/octet-stream';
    res.writeHead(200, { ...HEADERS, 'Content-Type': type, 'Content-Length': stat.size });
    if (req.method === 'HEAD') res.end();
    else fs.createReadStream(file).pipe(res);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  return new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(port, host, () => {
      const url = `http://${host.includes(':') ? `[${host}]` : host}:${server.address().port}/`;
      const close = () =>
        new Promise((done) => {
          server.close(done);
          for (const s of sockets) s.destroy(); // drop keep-alive connections: the app is really offline
        });
      ok({ server, url, close });
    });
  });
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const opt = (name, fallback) => (args.includes(name) ? args[args.indexOf(name) + 1] : fallback);
  try {
    const { url } = await serve({ dir: opt('--dir', path.join(ROOT, 'dist')), port: Number(opt('--port', 8080)), host: opt('--host', '127.0.0.1') });
    console.log(`serving on ${url} (Ctrl-C to stop)`);
  } catch (err) {
    console.error(`serve: ${err.message}`);
    process.exit(1);
  }
}
