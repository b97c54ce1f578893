// The filter bar (components/filter_bar.py): show the start and end inputs only for "custom".
window.dash_clientside = window.dash_clientside || {};
window.dash_clientside.filters = {
  customRangeStyle: function (range) {
    return range === "custom" ? null : { display: "none" };
  },
};
