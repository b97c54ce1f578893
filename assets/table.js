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
  // A paged grid (AG Grid's infinite row model) asks again for its rows once its filters or
  // the sync watermark moved: its cached blocks belong to the old ones.
  refreshRows: function (_query, gridId) {
    try {
      const api = window.dash_ag_grid.getApi(gridId);
      if (api && !api.isDestroyed()) api.purgeInfiniteCache();
    } catch (_error) {
      // Not ready yet: the grid asks for its first rows itself when it is.
    }
    return window.dash_clientside.no_update;
  },
};
