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

  document.addEventListener("visibilitychange", function () {
    if (document.hidden || !window.htmx) {
      return;
    }
    document.querySelectorAll("[data-poll]").forEach(function (elt) {
      window.htmx.trigger(elt, "refresh");
    });
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
