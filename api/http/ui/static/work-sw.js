// Fengqiao workbench service worker (scope /ui/work): the workbench works offline.
// Pages: network first, the last copy kept for offline. Static files: the cached copy
// first. Nothing but GETs of this origin is touched: commands go through the outbox
// (work.js), which sends them itself when the browser is online.
var CACHE = "fengqiao-work-v2"; // v2: possible duplicates on the queue page
var SHELL = [
  "/ui/work",
  "/ui/work/report",
  "/ui/work/static/work.css",
  "/ui/work/static/work.js",
  "/ui/work/static/icon-192.png",
  "/ui/work/manifest.webmanifest"
];

self.addEventListener("install", function (event) {
  event.waitUntil(
    caches.open(CACHE).then(function (cache) {
      return Promise.all(SHELL.map(function (url) {
        return fetch(url, { credentials: "same-origin" }).then(function (response) {
          if (response.ok && !response.redirected) return cache.put(url, response);
        }).catch(function () {});
      }));
    }).then(function () { return self.skipWaiting(); })
  );
});

self.addEventListener("activate", function (event) {
  event.waitUntil(
    caches.keys().then(function (keys) {
      return Promise.all(keys.filter(function (k) { return k !== CACHE; }).map(function (k) { return caches.delete(k); }));
    }).then(function () { return self.clients.claim(); })
  );
});

function keep(request, response) {
  if (response.ok && !response.redirected && response.type === "basic") {
    var copy = response.clone();
    caches.open(CACHE).then(function (cache) { cache.put(request, copy); });
  }
  return response;
}

self.addEventListener("fetch", function (event) {
  var request = event.request;
  var url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin) return;
  if (!(url.pathname === "/ui/work" || url.pathname.indexOf("/ui/work/") === 0)) return;
  if (url.pathname.indexOf("/ui/work/static/") === 0) {
    event.respondWith(caches.match(request).then(function (hit) {
      var fresh = fetch(request).then(function (r) { return keep(request, r); });
      return hit || fresh;
    }));
    return;
  }
  event.respondWith(
    fetch(request).then(function (response) { return keep(request, response); }).catch(function () {
      return caches.match(request).then(function (hit) {
        return hit || caches.match("/ui/work");
      });
    })
  );
});
