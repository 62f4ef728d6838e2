// Console behaviour that htmx attributes cannot express. Loaded from static (CSP: no
// inline scripts). Everything here is progressive: the console works without it.
(function () {
  "use strict";

  // Polling regions (data-poll) skip their requests while the tab is hidden, and
  // refresh at once when it becomes visible again.
  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail && event.detail.elt;
    if (document.hidden && elt && elt.hasAttribute("data-poll")) {
      event.preventDefault();
    }
  });

  function refreshPolls() {
    if (!window.htmx) {
      return;
    }
    document.querySelectorAll("[data-poll]").forEach(function (elt) {
      window.htmx.trigger(elt, "refresh");
    });
  }

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) {
      refreshPolls();
    }
  });

  // A poll answered by the login page means the session ended: reload the whole
  // page (which lands on the login form) instead of swapping it into a grid cell.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var xhr = event.detail && event.detail.xhr;
    if (xhr && xhr.responseURL && xhr.responseURL.indexOf("/accounts/login/") !== -1) {
      event.detail.shouldSwap = false;
      window.location.reload();
    }
  });

  // Polled regions send back the version of what they show (the HX-PTag of the last
  // answer, by element id: an outerHTML swap replaces the element), and the server
  // answers 204 (nothing to swap) while it has not changed: controlplane/rendering.py.
  // htmx 4's ptag extension does the same; htmx 2 would swap a revalidated (304) copy.
  var ptags = {};

  document.addEventListener("htmx:configRequest", function (event) {
    var elt = event.detail && event.detail.elt;
    if (elt && elt.id && elt.hasAttribute("data-poll") && ptags[elt.id]) {
      event.detail.headers["HX-PTag"] = ptags[elt.id];
    }
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var elt = event.detail && event.detail.elt;
    var xhr = event.detail && event.detail.xhr;
    var tag = xhr && xhr.getResponseHeader("HX-PTag");
    if (elt && elt.id && tag) {
      ptags[elt.id] = tag;
    }
  });

  // A page brought back by Back/Forward from the browser's memory (bfcache) asks its
  // polled regions again at once, instead of showing what they said when it was left.
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) {
      refreshPolls();
    }
  });

  // Mark polled regions busy while a request is in flight (screen readers, CSS).
  document.addEventListener("htmx:beforeSend", function (event) {
    var elt = event.detail && event.detail.elt;
    if (elt && elt.hasAttribute("data-poll")) {
      elt.setAttribute("aria-busy", "true");
    }
  });

  // ... and not busy once answered, also when the answer leaves the region in place
  // (HX-Reswap: none, as the background banner's poll does when nothing changed).
  document.addEventListener("htmx:afterRequest", function (event) {
    var elt = event.detail && event.detail.elt;
    if (elt && elt.hasAttribute("data-poll")) {
      elt.setAttribute("aria-busy", "false");
    }
  });
})();
