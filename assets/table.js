// The column chooser of every data table (components/table.py): hide the unticked columns.
window.dash_clientside = window.dash_clientside || {};
window.dash_clientside.table = {
  showColumns: function (visible, defs) {
    const grid = window.dash_clientside.callback_context.outputs_list.id.grid;
    const shown = new Set(visible || []);
    const next = (defs || []).map(function (def) {
      return Object.assign({}, def, { hide: !shown.has(def.field) });
    });
    window.dash_clientside.set_props(grid, { columnDefs: next });
    return next;
  },
};
