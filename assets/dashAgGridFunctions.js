// Cell formats of the data tables (services/tables.py): the grid gets raw values, shown here
// by each column's registry format. The CSV export keeps the raw values at full precision.
// The rules mirror components/formats.py, which the cards, tooltips and charts use
// (tests/test_formats.py runs both on the same values).
var dagfuncs = (window.dashAgGridFunctions = window.dashAgGridFunctions || {});

function nonZero(text) {
  return /[1-9]/.test(text);
}

// A value that rounds to zero loses its sign: "-0" reads as a loss that is not there.
function plain(text) {
  return text.charAt(0) === "-" && !nonZero(text) ? text.slice(1) : text;
}

function grouped(value, digits) {
  return Number(value).toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

// Cents from $1; below, four decimals (cents hide the cost of a single call); below $0.0001,
// two significant digits ($0.0000065, not $0.0000).
function usdDigits(amount) {
  if (amount >= 1) return 2;
  if (amount >= 0.0001 || amount === 0) return 4;
  return Math.min(12, 1 - Math.floor(Math.log10(amount)));
}

var UNITS = {
  count: function (value) {
    return plain(grouped(Math.round(value), 0));
  },
  percent: function (value) {
    return plain(grouped(value * 100, 1) + "%");
  },
  ms: function (value) {
    if (Math.abs(value) >= 1000) return plain(grouped(value / 1000, 2) + " s");
    return plain(value.toFixed(0) + " ms");
  },
  usd: function (value) {
    const text = grouped(Math.abs(value), usdDigits(Math.abs(value)));
    return (value < 0 && nonZero(text) ? "-" : "") + "$" + text;
  },
  score: function (value) {
    return plain(value.toFixed(2));
  },
  number: function (value) {
    return plain(Number(value).toLocaleString("en-US", { maximumFractionDigits: 3 }));
  },
};

function missing(value) {
  return value === null || value === undefined || value === "";
}

// A difference with its sign: rates in percentage points ("+3.1 pp"), else in the unit.
dagfuncs.formatDelta = function (value, unit) {
  if (missing(value)) return "";
  const number = Number(value);
  const format = UNITS[unit] || UNITS.number;
  const text =
    unit === "percent" ? grouped(Math.abs(number) * 100, 1) + " pp" : format(Math.abs(number));
  if (!nonZero(text)) return text;
  return (number > 0 ? "+" : "-") + text;
};

// The zone the page shows times in: the URL's tz=, else the user's setting (components/shell.py
// renders it into #user-display), else the browser's. The server buckets in the same order.
dagfuncs.pageZone = function () {
  if (typeof window === "undefined" || typeof document === "undefined") return undefined;
  const urlZone = new URLSearchParams(window.location.search).get("tz");
  const values = document.getElementById("user-display");
  const saved = values ? values.dataset.timezone : "";
  const candidates = [urlZone, saved];
  for (let i = 0; i < candidates.length; i++) {
    if (candidates[i] && knownZone(candidates[i])) return candidates[i];
  }
  return undefined; // Intl then uses the browser's zone
};

function knownZone(zone) {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
    return true;
  } catch (_error) {
    return false; // the server ignores an unknown tz= too
  }
}

// ISO 8601 from the server (with its offset), shown as "2026-03-01 18:45:00 GMT+5:45" in
// `zone` (undefined: the browser's). The CSV export keeps the ISO text.
dagfuncs.formatTime = function (value, zone) {
  const moment = new Date(String(value));
  if (isNaN(moment.getTime())) return String(value);
  const parts = {};
  new Intl.DateTimeFormat("en-US", {
    timeZone: zone,
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hourCycle: "h23",
    timeZoneName: "short",
  })
    .formatToParts(moment)
    .forEach(function (part) {
      parts[part.type] = part.value;
    });
  const date = parts.year + "-" + parts.month + "-" + parts.day;
  const time = parts.hour + ":" + parts.minute + ":" + parts.second;
  return date + " " + time + " " + parts.timeZoneName;
};

// `params` (optional) lets a column take its unit from its row: "unit" shows the value in the
// row's `unit`, "unit-delta" a difference in it (the comparison table, one metric a row).
dagfuncs.formatCell = function (value, format, params) {
  if (missing(value)) return "";
  const rowUnit = params && params.data ? params.data.unit : undefined;
  if (format === "unit-delta") return dagfuncs.formatDelta(value, rowUnit || "number");
  if (format === "unit") format = rowUnit || "number";
  if (UNITS[format]) return UNITS[format](Number(value));
  switch (format) {
    case "yes-no":
      return value ? "yes" : "no";
    case "time":
      return dagfuncs.formatTime(value, dagfuncs.pageZone());
    default:
      return String(value);
  }
};
