// Colour mode and time zone of every page (components/shell.py renders the user's settings
// into #user-display; services/user_settings.py saves them).
//
// - Colour mode: Bootstrap 5.3 reads `data-bs-theme` on <html>. "auto" follows the system's
//   prefers-color-scheme, and its changes. The last mode is kept in localStorage and applied
//   as soon as this file runs, before Dash renders the layout, so a dark page does not flash
//   white; the server's value (#user-display) then wins.
// - Charts: components/charts.py builds light figures. Here every Plotly graph is restyled
//   with Plotly.relayout to the Bootstrap dark palette (and back): on a mode change, and on
//   each graph's `plotly_afterplot`, which fires for new graphs and for every redraw a
//   callback causes. A graph already in the wanted colours is left alone, so the relayout's
//   own afterplot ends there.
// - Time zone: a user with no saved zone gets the browser's, saved once, so the server's day
//   and hour buckets (services/user_settings.display_zone) agree with the browser.
(function () {
  const STORAGE_KEY = "prompt-dashboard-theme";
  const MODES = ["auto", "light", "dark"];
  // Bootstrap 5.3's dark palette (--bs-body-bg, --bs-body-color, --bs-border-color).
  const DARK = {
    paper: "#212529",
    plot: "#212529",
    font: "#dee2e6",
    grid: "#343a40",
    line: "#495057",
  };
  // The light look components/charts.py gives every figure (plotly_white).
  const LIGHT = {
    paper: "white",
    plot: "white",
    font: "#2a3f5f",
    grid: "#EBF0F8",
    line: "#EBF0F8",
  };
  const media = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;
  let chosen = "auto";

  function stored() {
    try {
      return window.localStorage.getItem(STORAGE_KEY);
    } catch (_error) {
      return null; // storage disabled: the server's value still applies once rendered
    }
  }

  function remember(mode) {
    try {
      window.localStorage.setItem(STORAGE_KEY, mode);
    } catch (_error) {
      // Only the pre-paint guess is lost.
    }
  }

  function resolved(mode) {
    if (mode === "light" || mode === "dark") return mode;
    return media && media.matches ? "dark" : "light";
  }

  function palette() {
    return document.documentElement.dataset.bsTheme === "dark" ? DARK : LIGHT;
  }

  function axisUpdates(gd, colours) {
    const update = {
      paper_bgcolor: colours.paper,
      plot_bgcolor: colours.plot,
      "font.color": colours.font,
    };
    const layout = gd._fullLayout || {};
    Object.keys(layout).forEach(function (key) {
      if (/^[xy]axis\d*$/.test(key)) {
        update[key + ".gridcolor"] = colours.grid;
        update[key + ".linecolor"] = colours.line;
        update[key + ".zerolinecolor"] = colours.line;
      }
    });
    return update;
  }

  function restyle(gd) {
    if (!window.Plotly || !gd._fullLayout) return;
    const colours = palette();
    // A graph never darkened keeps its figure's own light colours.
    if (colours === LIGHT && !gd.dataset.themed) return;
    if (gd._fullLayout.paper_bgcolor === colours.paper) return;
    if (colours === LIGHT) delete gd.dataset.themed;
    else gd.dataset.themed = "dark";
    window.Plotly.relayout(gd, axisUpdates(gd, colours)).catch(function () {
      // The graph was replaced meanwhile; its own afterplot restyles the new one.
    });
  }

  function watchGraph(gd) {
    if (gd.dataset.themeWatched || typeof gd.on !== "function") return;
    gd.dataset.themeWatched = "true";
    // Fires for a new graph and after every redraw, also a callback's Plotly.react, which
    // brings back the light figure; the relayout's own afterplot finds nothing left to do.
    gd.on("plotly_afterplot", function () {
      restyle(gd);
    });
    restyle(gd);
  }

  function restyleAll() {
    document.querySelectorAll(".js-plotly-plot").forEach(function (gd) {
      watchGraph(gd);
      restyle(gd);
    });
  }

  function apply(mode) {
    chosen = MODES.indexOf(mode) >= 0 ? mode : "auto";
    const wanted = resolved(chosen);
    if (document.documentElement.dataset.bsTheme !== wanted) {
      document.documentElement.dataset.bsTheme = wanted;
    }
    document.documentElement.dataset.themeChoice = chosen;
    restyleAll();
  }

  function browserZone() {
    try {
      return Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch (_error) {
      return "";
    }
  }

  function post(body) {
    return window
      .fetch("/api/settings", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        credentials: "same-origin",
        body: JSON.stringify(body),
      })
      .then(function (response) {
        return response.json().then(function (answer) {
          if (!response.ok) throw new Error(answer.message || "Not saved.");
          return answer;
        });
      });
  }

  let zoneSaving = false;

  // A user without a saved zone gets the browser's, once; the page was bucketed in UTC, so it
  // reloads to agree (unless the URL's tz= chose the zone, or the browser's zone is UTC).
  function saveBrowserZone(values) {
    const zone = browserZone();
    if (zoneSaving || !zone || values.dataset.signedIn !== "true") return;
    zoneSaving = true;
    post({ timezone: zone })
      .then(function (answer) {
        if (!answer.timezone) return;
        values.dataset.timezone = answer.timezone;
        const urlZone = new URLSearchParams(window.location.search).get("tz");
        if (!urlZone && answer.timezone !== "UTC") window.location.reload();
      })
      .catch(function () {
        // The zone is unknown to the server (an old tzdata): UTC stays, as before.
      });
  }

  let seen = null;

  function readSettings() {
    const values = document.getElementById("user-display");
    if (!values || values === seen) return;
    seen = values;
    const mode = values.dataset.theme || "auto";
    remember(mode);
    apply(mode);
    if (!values.dataset.timezone) saveBrowserZone(values);
  }

  apply(stored() || "auto");
  if (media) {
    const follow = function () {
      if (chosen === "auto") apply("auto");
    };
    if (media.addEventListener) media.addEventListener("change", follow);
    else if (media.addListener) media.addListener(follow);
  }

  // Dash renders the layout after this file runs, and pages replace their graphs: watch both.
  let queued = false;
  new MutationObserver(function () {
    if (queued) return;
    queued = true;
    window.requestAnimationFrame(function () {
      queued = false;
      readSettings();
      document.querySelectorAll(".js-plotly-plot").forEach(watchGraph);
    });
  }).observe(document.documentElement, { childList: true, subtree: true });

  window.dash_clientside = window.dash_clientside || {};
  window.dash_clientside.theme = {
    openSettings: function (clicks) {
      return Boolean(clicks);
    },
    // Save the dialog's choices; a new zone reloads the page, whose buckets are the server's.
    saveSettings: function (clicks, mode, zone) {
      if (!clicks) return window.dash_clientside.no_update;
      const values = document.getElementById("user-display");
      const before = values ? values.dataset.timezone : "";
      // "Browser default" stores the browser's zone, which is what the server then uses.
      const wanted = zone || browserZone();
      return post({ theme: mode, timezone: wanted })
        .then(function (answer) {
          remember(answer.theme);
          if (values) {
            values.dataset.theme = answer.theme;
            values.dataset.timezone = answer.timezone || "";
          }
          apply(answer.theme);
          if ((answer.timezone || "") !== (before || "")) window.location.reload();
          else window.dash_clientside.set_props("settings-modal", { is_open: false });
          return "Saved.";
        })
        .catch(function (error) {
          return "Not saved: " + error.message;
        });
    },
  };
})();
