// The analytics page's latency percentile lives in the URL as pct= (pages/analytics.py). The
// filter bar owns the URL's other parameters and rewrites the query when they change; this adds
// pct= back to whatever the address is, replacing the history entry (no new one, no reload).
window.dash_clientside = window.dash_clientside || {};
window.dash_clientside.analytics = {
  percentileToUrl: function (pct, _state) {
    const url = new URL(window.location.href);
    if (!pct || pct === "p50") {
      url.searchParams.delete("pct");
    } else {
      url.searchParams.set("pct", pct);
    }
    if (url.href !== window.location.href) {
      window.history.replaceState(window.history.state, "", url.href);
    }
    return window.dash_clientside.no_update;
  },
};
