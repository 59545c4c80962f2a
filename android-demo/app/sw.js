// Offline: precache the app (pages, scripts, wasm, the model's config and tokenizer) on install, and keep
// the model file the user chose when it is first loaded; after that every request is answered from the
// cache, so the app works in airplane mode. precache.js is written by scripts/build.mjs:
//   self.PRECACHE = {version, files}
importScripts('precache.js');

const CACHE = `fabulist-${self.PRECACHE.version}`;

self.addEventListener('install', (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(self.PRECACHE.files))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith('fabulist-') && k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

async function fromCache(request) {
  const cache = await caches.open(CACHE);
  const hit = await cache.match(request, { ignoreSearch: true });
  if (hit) return hit;
  const response = await fetch(request);
  // the chosen model file arrives here the first time the worker loads it
  if (response.ok && new URL(request.url).pathname.includes('/model/')) await cache.put(request, response.clone());
  return response;
}

self.addEventListener('fetch', (event) => {
  const { request } = event;
  if (request.method !== 'GET' || new URL(request.url).origin !== self.location.origin) return;
  event.respondWith(fromCache(request));
});

// {type: 'cache', urls}: make sure these (the loaded model) are kept; answers {cached: true} on the port.
self.addEventListener('message', (event) => {
  if (event.data?.type !== 'cache') return;
  const reply = event.ports[0];
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      for (const url of event.data.urls) if (!(await cache.match(url, { ignoreSearch: true }))) await cache.add(url);
      reply?.postMessage({ cached: true });
    })().catch((err) => reply?.postMessage({ cached: false, error: String(err) })),
  );
});
