// When the session expires while a page polls, Dash callbacks get 401: send the browser to login
// instead of leaving a page that silently stops updating.
(function () {
  const originalFetch = window.fetch.bind(window);
  let redirecting = false;
  window.fetch = async function (...args) {
    const response = await originalFetch(...args);
    if (response.status === 401 && !redirecting) {
      const url = String(args[0] && args[0].url ? args[0].url : args[0]);
      if (url.includes("/_dash-")) {
        redirecting = true;
        const next = window.location.pathname + window.location.search;
        window.location.assign("/login?next=" + encodeURIComponent(next));
        // Never settle: the page is leaving, and a rejected callback would only log noise.
        return new Promise(function () {});
      }
    }
    return response;
  };
})();
