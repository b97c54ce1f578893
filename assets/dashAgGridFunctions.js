// Cell formats of the data tables (services/tables.py): the grid gets raw values, shown here
// by each column's registry format. The CSV export keeps the raw values at full precision.
var dagfuncs = (window.dashAgGridFunctions = window.dashAgGridFunctions || {});

dagfuncs.formatCell = function (value, format) {
  if (value === null || value === undefined || value === "") return "";
  switch (format) {
    case "count":
      return Number(value).toLocaleString("en-US", { maximumFractionDigits: 0 });
    case "percent":
      return (Number(value) * 100).toFixed(1) + " %";
    case "ms": {
      const ms = Number(value);
      return Math.abs(ms) >= 1000 ? (ms / 1000).toFixed(2) + " s" : ms.toFixed(0) + " ms";
    }
    case "usd": {
      const usd = Number(value);
      // Cents hide the cost of a single call: small amounts keep four decimals.
      const digits = Math.abs(usd) < 1 ? 4 : 2;
      return "$" + usd.toLocaleString("en-US", {
        minimumFractionDigits: digits,
        maximumFractionDigits: digits,
      });
    }
    case "number":
      return Number(value).toLocaleString("en-US", { maximumFractionDigits: 3 });
    case "yes-no":
      return value ? "yes" : "no";
    case "time":
      // ISO 8601 from the server, shown in UTC like the filter bar's times.
      return String(value).replace("T", " ").replace(/(\.\d+)?\+00:00$/, " UTC");
    default:
      return String(value);
  }
};
