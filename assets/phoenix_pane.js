// Lazy Phoenix panes: create each pane's iframe only when the pane scrolls into view, and hide
// its skeleton once Phoenix has loaded. Dash owns the DOM, so the iframe goes in through
// dash_clientside.set_props, and Dash keeps it in its layout like any other component.
(function () {
  const observing = new WeakSet();

  function slotOf(body) {
    return body.querySelector(":scope > div[id$='-slot']");
  }

  function create(body) {
    const pane = body.dataset.pane;
    window.dash_clientside.set_props(pane + "-slot", {
      children: {
        type: "Iframe",
        namespace: "dash_html_components",
        props: {
          id: pane + "-frame",
          src: body.dataset.src,
          title: body.dataset.title,
          className: "phoenix-pane-frame",
          style: { width: "100%", height: "100%", border: "0" },
        },
      },
    });
  }

  const MARGIN_PX = 100;

  function inView(body) {
    const rect = body.getBoundingClientRect();
    return rect.top < window.innerHeight + MARGIN_PX && rect.bottom > -MARGIN_PX;
  }

  function busy() {
    // While callbacks run, charts above a pane have not taken their height yet.
    return document.querySelector("._dash-loading, ._dash-loading-callback") !== null;
  }

  function settle(body) {
    if (!document.contains(body)) {
      observing.delete(body);
    } else if (busy()) {
      window.setTimeout(settle, 150, body);
    } else if (inView(body)) {
      observing.delete(body);
      create(body);
    } else {
      visibility.observe(body);
    }
  }

  const visibility = new IntersectionObserver(
    function (entries) {
      for (const entry of entries) {
        if (!entry.isIntersecting) continue;
        visibility.unobserve(entry.target);
        settle(entry.target);
      }
    },
    { rootMargin: MARGIN_PX + "px" }
  );

  function watchLoad(body, frame) {
    if (frame.dataset.watched) return;
    frame.dataset.watched = "1";
    frame.addEventListener("load", function () {
      window.dash_clientside.set_props(body.dataset.pane + "-skeleton", {
        className: "d-none",
      });
    });
  }

  function scan() {
    if (!window.dash_clientside || !window.dash_clientside.set_props) return;
    for (const body of document.querySelectorAll(".phoenix-pane-body[data-src]")) {
      const slot = slotOf(body);
      const frame = slot && slot.querySelector("iframe");
      if (frame) {
        watchLoad(body, frame);
        continue;
      }
      // Dash re-rendered the pane (a new row clicked, a redraw): it needs a fresh iframe.
      if (observing.has(body)) continue;
      observing.add(body);
      visibility.observe(body);
    }
  }

  new MutationObserver(scan).observe(document.documentElement, {
    childList: true,
    subtree: true,
    attributes: true,
    attributeFilter: ["data-src"],
  });
})();
