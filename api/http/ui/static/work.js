// Fengqiao workbench (/ui/work). Every form goes into an outbox in IndexedDB with the time
// it was made and its idempotency key, then is sent when the browser is online (at once, on
// the "online" event, and on every page load). Photos are kept as blobs, uploaded first,
// then the command names their hashes. A command the server refuses (the case moved on,
// was reassigned, the form no longer fits) stays in the outbox as a conflict, in words.
(function () {
  "use strict";
  var DB_NAME = "fengqiao-work";
  var STORE = "outbox";
  var syncing = false;

  // -- IndexedDB --------------------------------------------------------------------------
  function openDb() {
    return new Promise(function (resolve, reject) {
      var request = indexedDB.open(DB_NAME, 1);
      request.onupgradeneeded = function () {
        request.result.createObjectStore(STORE, { keyPath: "key" });
      };
      request.onsuccess = function () { resolve(request.result); };
      request.onerror = function () { reject(request.error); };
    });
  }

  function withStore(mode, work) {
    return openDb().then(function (db) {
      return new Promise(function (resolve, reject) {
        var tx = db.transaction(STORE, mode);
        var request = work(tx.objectStore(STORE));
        tx.oncomplete = function () { db.close(); resolve(request && request.result); };
        tx.onerror = function () { db.close(); reject(tx.error); };
        tx.onabort = function () { db.close(); reject(tx.error); };
      });
    });
  }

  function putItem(item) { return withStore("readwrite", function (s) { return s.put(item); }); }
  function deleteItem(key) { return withStore("readwrite", function (s) { return s.delete(key); }); }
  function allItems() {
    return withStore("readonly", function (s) { return s.getAll(); }).then(function (items) {
      return (items || []).sort(function (a, b) { return a.made_at < b.made_at ? -1 : 1; });
    });
  }

  // -- forms into the outbox ----------------------------------------------------------------
  function setPath(target, path, value) {
    var parts = path.split(".");
    var node = target;
    for (var i = 0; i < parts.length - 1; i++) {
      var next = /^\d+$/.test(parts[i + 1]) ? [] : {};
      node[parts[i]] = node[parts[i]] || next;
      node = node[parts[i]];
    }
    node[parts[parts.length - 1]] = value;
  }

  function bodyOf(form) {
    var body = {};
    var photos = [];
    new FormData(form).forEach(function (value, name) {
      if (typeof value !== "string") {
        if (value.size) photos.push(value);
      } else if (value.trim() !== "") {
        setPath(body, name, value.trim());
      }
    });
    if (body.parties) {
      body.parties = body.parties.filter(function (p) { return p && p.name; });
      if (!body.parties.length) delete body.parties;
    }
    return { body: body, photos: photos };
  }

  function me() { return document.body.dataset.user || ""; }

  function mine(item) { return !item.user || item.user === me(); } // sent only as who made it

  function newKey() {
    return "work-" + (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random());
  }

  function message(form, text, bad) {
    var out = form.querySelector(".formmsg");
    if (out) {
      out.textContent = text;
      out.classList.toggle("error", !!bad);
    }
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.matches("form[data-logout]")) {
      if (window.caches) caches.keys().then(function (keys) { keys.forEach(function (k) { caches.delete(k); }); });
      return; // the outbox stays: it is the worker's unsent work
    }
    if (!form.matches("form[data-command]")) return;
    event.preventDefault();
    var parts = bodyOf(form);
    var item = {
      key: form.dataset.key,
      user: me(),
      url: new URL(form.getAttribute("action"), location.href).pathname,
      label: form.dataset.label || form.dataset.command,
      case_title: form.dataset.case || parts.body.title || "",
      expected_version: form.dataset.version || null,
      body: parts.body,
      photos: parts.photos,
      hashes: [],
      made_at: new Date().toISOString(),
      state: "queued",
      detail: ""
    };
    form.dataset.key = newKey(); // the next submit of this form is a new command
    putItem(item).then(function () {
      form.reset();
      message(form, navigator.onLine ? "已保存，正在发送 saved, sending…" : "已保存，联网后发送 saved; sent when online");
      if (form.dataset.next) {
        location.href = form.dataset.next;
        return;
      }
      return sync();
    }, function (error) {
      message(form, "未能保存 could not save: " + error, true);
    });
  });

  // -- sending --------------------------------------------------------------------------------
  function explain(status, problem) {
    var detail = (problem && (problem.detail || problem.title)) || "";
    if (status === 412) {
      return "案件已变化，请重新查看 the case has moved on (now version " +
        (problem && problem.actual ? problem.actual : "?") + "): " + detail;
    }
    if (status === 403) return "无权办理（可能已改派）not permitted (reassigned?): " + detail;
    if (status === 404) return "案件不存在或不在辖区 no such case in your region: " + detail;
    if (status === 409) return "案件状态不允许 not allowed in the case's state: " + detail;
    if (status === 413 || status === 415) return "照片未被接受 photo refused: " + detail;
    if (status === 422) return "请检查 please check: " + detail;
    return "被拒绝 refused (" + status + "): " + detail;
  }

  function refuse(item, response) {
    return response.json().catch(function () { return {}; }).then(function (problem) {
      item.state = "conflict";
      item.status = response.status;
      item.problem_type = problem.type || "";
      item.detail = explain(response.status, problem);
      item.photos = item.photos || [];
      return putItem(item).then(function () { return "conflict"; });
    });
  }

  function retryLater(response) {
    return response.status === 401 || response.status === 429 || response.status >= 500;
  }

  function uploadPhotos(item) {
    var chain = Promise.resolve(null);
    (item.photos || []).forEach(function (photo, index) {
      chain = chain.then(function (stop) {
        if (stop || item.hashes[index]) return stop;
        return fetch("/ui/work/evidence", {
          method: "POST",
          credentials: "same-origin",
          headers: { "Content-Type": photo.type || "application/octet-stream" },
          body: photo
        }).then(function (response) {
          if (response.ok) {
            return response.json().then(function (stored) {
              item.hashes[index] = stored.sha256;
              return putItem(item).then(function () { return null; });
            });
          }
          return response; // refused or retry later: stop here
        });
      });
    });
    return chain;
  }

  function send(item) {
    return uploadPhotos(item).then(function (stopped) {
      if (stopped) return stopped;
      var body = Object.assign({}, item.body, { occurred_at: item.made_at });
      if (item.hashes.length) body.attachments = item.hashes.slice();
      var headers = { "Content-Type": "application/json", "Idempotency-Key": item.key };
      if (item.expected_version) headers["If-Match"] = '"' + item.expected_version + '"';
      return fetch(item.url, {
        method: "POST", credentials: "same-origin", headers: headers, body: JSON.stringify(body)
      });
    }).then(function (response) {
      if (response.ok) return landed(item, response).then(function () { return "sent"; });
      if (retryLater(response)) {
        item.detail = response.status === 401 ? "请重新登录后发送 sign in again to send" : "稍后重试 will retry";
        if (response.status === 401) signInAgain();
        return putItem(item).then(function () { return "later"; });
      }
      return refuse(item, response);
    });
  }

  // A report that landed answers with the open cases it may repeat (possible_duplicates):
  // they stay on the queue page, as a notice in IndexedDB, until the worker has read them.
  function landed(item, response) {
    var answer = item.url === "/ui/work/report" ? response.json().catch(function () { return {}; })
      : Promise.resolve({});
    return answer.then(function (body) {
      var found = (body && body.possible_duplicates) || [];
      if (!found.length) return deleteItem(item.key);
      item.state = "duplicates";
      item.case_id = body.id;
      item.duplicates = found;
      item.photos = []; // uploaded already
      item.detail = "";
      return putItem(item);
    });
  }

  function signInAgain() {
    var status = document.getElementById("sync-status");
    if (!status || status.querySelector("a")) return;
    var link = text("a", "登录后发送 sign in to send");
    link.href = "/ui/login?next=%2Fui%2Fwork";
    link.className = "big primary";
    status.appendChild(link);
  }

  function sync() {
    if (syncing || !navigator.onLine) return render();
    syncing = true;
    var sent = 0;
    return allItems().then(function (items) {
      var chain = Promise.resolve(true);
      items.filter(function (i) { return i.state === "queued" && mine(i); }).forEach(function (item) {
        chain = chain.then(function (go) {
          if (!go) return false;
          return send(item).then(function (outcome) {
            if (outcome === "sent") sent += 1;
            return outcome !== "later";
          });
        });
      });
      return chain;
    }).catch(function () { return false; }).then(function () {
      syncing = false;
      var status = document.getElementById("sync-status");
      if (status && sent) status.textContent = "已发送 " + sent + " 项 sent " + sent;
      return render();
    });
  }

  // -- the outbox on the queue page -----------------------------------------------------------
  function text(tag, content, cls) {
    var el = document.createElement(tag);
    el.textContent = content;
    if (cls) el.className = cls;
    return el;
  }

  function why(reasons) {
    return (reasons || []).map(function (w) {
      if (w.signal === "party") return "同一当事人 same party";
      if (w.signal === "text") return "内容相近 similar text " + Math.round(w.similarity * 100) + "%";
      if (w.signal === "nearby") {
        var metres = Math.round(w.distance_m);
        return "相距 " + metres + " 米 nearby (" + metres + " m)";
      }
      return w.signal;
    }).join(" · ");
  }

  function caseLink(caseId, content) {
    var a = text("a", content);
    a.href = "/ui/work/cases/" + encodeURIComponent(caseId);
    return a;
  }

  // an outbox item's row: its state as the row's class and first words
  function outboxRow(item, stateWords) {
    var li = document.createElement("li");
    li.className = item.state;
    li.dataset.key = item.key;
    li.appendChild(text("span", stateWords, "state"));
    return li;
  }

  // a button that removes the item from the outbox and draws the lists again
  function dismissButton(item, words) {
    var button = text("button", words);
    button.type = "button";
    button.addEventListener("click", function () { deleteItem(item.key).then(render); });
    return button;
  }

  function renderNotices(notices) {
    var list = document.getElementById("duplicate-items");
    if (!list) return;
    document.getElementById("duplicates").hidden = notices.length === 0;
    list.textContent = "";
    notices.forEach(function (item) {
      var li = outboxRow(item, "可能重复 possible duplicate");
      li.appendChild(document.createTextNode(" "));
      li.appendChild(caseLink(item.case_id, "您上报的 your report · " + item.case_title));
      var others = document.createElement("ul");
      item.duplicates.forEach(function (d) {
        var row = document.createElement("li");
        row.appendChild(caseLink(d.case_id, d.title || d.case_id));
        row.appendChild(text("small", why(d.why)));
        others.appendChild(row);
      });
      li.appendChild(others);
      li.appendChild(dismissButton(item, "知道了 dismiss"));
      list.appendChild(li);
    });
  }

  function render() {
    var list = document.getElementById("outbox-items");
    if (!list) return Promise.resolve();
    return allItems().then(function (all) {
      renderNotices(all.filter(function (i) { return i.state === "duplicates" && mine(i); }));
      var items = all.filter(function (i) { return i.state !== "duplicates"; });
      var box = document.getElementById("outbox");
      box.hidden = items.length === 0;
      list.textContent = "";
      items.forEach(function (item) {
        var li = outboxRow(item, item.state === "conflict" ? "冲突 conflict" : "待发送 queued");
        li.appendChild(document.createTextNode(" " + item.label + (item.case_title ? " · " + item.case_title : "")));
        var made = new Date(item.made_at);
        li.appendChild(text("small", "办理于 made " + made.toLocaleString("zh-CN", { hour12: false }) +
          ((item.photos || []).length ? " · 照片 photos " + item.photos.length : "")));
        if (!mine(item)) li.appendChild(text("span", "待 " + item.user + " 登录后发送 sent when " + item.user + " signs in", "detail"));
        else if (item.detail) li.appendChild(text("span", item.detail, "detail"));
        if (item.state === "conflict" && mine(item)) li.appendChild(dismissButton(item, "知道了，移除 dismiss"));
        list.appendChild(li);
      });
    });
  }

  // -- online state, the service worker, the report form's categories ---------------------------
  function showNet() {
    var net = document.getElementById("net");
    if (!net) return;
    net.dataset.online = navigator.onLine ? "1" : "0";
    net.innerHTML = navigator.onLine ? "在线<small>online</small>" : "离线<small>offline</small>";
  }

  function warmCases() {
    // keep the pages of my queue for offline use (the service worker stores what passes)
    if (!navigator.onLine || !navigator.serviceWorker || !navigator.serviceWorker.controller) return;
    document.querySelectorAll("a.case-link, #report-link").forEach(function (a) {
      fetch(a.href, { credentials: "same-origin" }).catch(function () {});
    });
  }

  var kind = document.getElementById("kind");
  if (kind) {
    var categories = JSON.parse(kind.dataset.categories || "{}");
    kind.addEventListener("change", function () {
      var select = document.getElementById("category");
      select.textContent = "";
      (categories[kind.value] || []).forEach(function (pair) {
        var option = text("option", pair[1]);
        option.value = pair[0];
        select.appendChild(option);
      });
    });
  }

  window.addEventListener("online", function () { showNet(); sync(); warmCases(); });
  window.addEventListener("offline", showNet);
  showNet();
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/ui/work/sw.js", { scope: "/ui/work" }).then(function () {
      return navigator.serviceWorker.ready;
    }).then(warmCases).catch(function () {});
  }
  window.fengqiaoOutbox = { all: allItems, sync: sync }; // for the browser tests and curious workers
  sync();
})();
