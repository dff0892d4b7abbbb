/* The KPI dashboard. Every number comes from the /v1 API, read with the bearer token given in
   the address fragment (#token=...: never sent to a server), kept in sessionStorage so that a
   reload works. The range comes from the query string (?from=&to=&granularity=), else the API's
   defaults. Plain JS and the global `Plotly`; no build step.

   For tests and scripts: every tile carries data-kpi="<department>.<kpi>" and data-value (the raw
   JSON value), and <body data-state> is "loading", then "ready" once everything has rendered,
   "token" while asking for a token, or "error" with the reason in #message. */
(function () {
  "use strict";

  const TOKEN_KEY = "baton.kpi.token";
  const PLOTLY_SRC = "/dashboard/assets/plotly.min.js";
  const LOCALE = "en-US";
  const FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, Arial, "DejaVu Sans", sans-serif';
  const COLORS = {
    ink: "#1d2733",
    muted: "#5b6b7c",
    line: "#dde3ea",
    accent: "#2f6db5",
    revenue: "#5b8fd0",
    logoChurn: "#c8553d",
    mrrChurn: "#8e5aa8",
    funnel: ["#1f4e8c", "#2f6db5", "#4a88c7", "#6fa3d6", "#98bfe3"],
  };

  const DEPARTMENTS = [
    ["marketing", "Marketing"],
    ["inside_sales", "Inside Sales"],
    ["field_sales", "Field Sales"],
    ["customer_success", "Customer Success"],
    ["shared", "Shared"],
  ];

  // [kpi (dotted for nested values), label, kind, which way is better, definition (DESIGN §7)]
  const KPIS = {
    marketing: [
      ["leads_captured", "Leads captured", "count", "up", "LeadCaptured events"],
      ["mql_count", "MQLs", "count", "up", "leads that became marketing-qualified"],
      ["lead_to_mql_rate", "Lead → MQL", "rate", "up", "MQLs / leads captured"],
      ["marketing_cost", "Marketing cost", "money", null, "campaign cost in the period"],
      ["cost_per_lead", "Cost per lead", "money", "down", "campaign cost / leads"],
      ["cost_per_mql", "Cost per MQL", "money", "down", "campaign cost / MQLs"],
      ["content_downloads", "Content downloads", "count", "up", "content_download activities"],
    ],
    inside_sales: [
      ["mqls_received", "MQLs received", "count", "up", "MQLs handed to Inside Sales"],
      ["contact_rate", "Contact rate", "rate", "up", "MQLs with at least one touch / MQLs"],
      ["sql_rate", "SQL rate", "rate", "up", "opportunities created / MQLs"],
      ["lead_response_time.median_hours", "Response, median", "hours", "down",
        "first touch − qualified"],
      ["lead_response_time.p90_hours", "Response, p90", "hours", "down",
        "first touch − qualified, 90th percentile"],
      ["handling_rate", "Handled within SLA", "rate", "up",
        "MQLs first touched within the SLA / MQLs"],
      ["sla_breaches", "SLA breaches", "count", "down", "response SLAs breached"],
    ],
    field_sales: [
      ["opportunity_count", "Opportunities", "count", "up", "opportunities created"],
      ["deals_won", "Deals won", "count", "up", "deals won"],
      ["deals_lost", "Deals lost", "count", "down", "deals lost"],
      ["win_rate", "Win rate", "rate", "up", "won / (won + lost)"],
      ["revenue_won", "Revenue won", "money", "up", "sum of the amounts won"],
      ["neglect_rate", "Neglect rate", "rate", "down", "neglected / created"],
      ["avg_deal_size", "Average deal", "money", "up", "revenue / deals won"],
      ["sales_cycle_days", "Sales cycle", "days", "down", "won − created (median)"],
    ],
    customer_success: [
      ["customers_at_start", "Customers at start", "count", "up", "customers at the start"],
      ["mrr_at_start", "MRR at start", "money", "up", "MRR at the start"],
      ["customers_churned", "Customers churned", "count", "down", "customers churned"],
      ["logo_churn_rate", "Logo churn", "rate", "down", "churned / customers at start"],
      ["revenue_churn_rate", "MRR churn", "rate", "down", "MRR lost / MRR at start"],
      ["nps", "NPS", "score", "up", "% promoters (9–10) − % detractors (0–6)"],
      ["nps_responses", "NPS responses", "count", "up", "NPS answers"],
      ["upsell_count", "Upsells", "count", "up", "upsells won"],
      ["expansion_mrr", "Expansion MRR", "money", "up", "MRR added by upsells and renewals"],
      ["nrr", "NRR", "rate", "up",
        "(MRR at start + expansion − churn) / MRR at start"],
      ["ltv", "LTV", "money", "up", "ARPA / monthly revenue churn"],
      ["churn_risks", "Churn risks", "count", "down", "accounts flagged at risk"],
    ],
    shared: [
      ["overall_win_rate", "Overall win rate", "rate", "up", "won / SQLs"],
      ["lead_to_customer_rate", "Lead → customer", "rate", "up", "customers / leads"],
      ["ltv", "LTV", "money", "up", "ARPA / monthly revenue churn"],
      ["cac", "CAC", "money", "down", "marketing cost / new customers"],
      ["ltv_to_cac", "LTV : CAC", "ratio", "up", "LTV / CAC"],
      ["funnel_velocity_days.lead_to_mql", "Lead → MQL time", "days", "down",
        "median days from lead to MQL"],
      ["funnel_velocity_days.mql_to_sql", "MQL → SQL time", "days", "down",
        "median days from MQL to SQL"],
      ["funnel_velocity_days.sql_to_won", "SQL → won time", "days", "down",
        "median days from SQL to won"],
      ["sla_compliance.mql", "SLA: MQL hand-off", "rate", "up", "MQLs accepted within the SLA"],
      ["sla_compliance.sql", "SLA: SQL hand-off", "rate", "up", "SQLs accepted within the SLA"],
      ["sla_compliance.deal", "SLA: deal hand-off", "rate", "up",
        "deals taken over within the SLA"],
    ],
  };

  const STAGES = { lead: "Leads", mql: "MQL", sql: "SQL", won: "Won", retained: "Retained" };
  const STAGES_BEFORE = { lead: "leads", mql: "MQLs", sql: "SQLs", won: "won" };
  const HANDOFFS = {
    mql: "MQL · Marketing → Inside Sales",
    sql: "SQL · Inside Sales → Field Sales",
    deal: "Deal · Field Sales → CS",
    churn_risk: "Churn risk · CS → Sales",
  };
  const NULL_TEXT = "—";

  /* ---------- formatting ---------- */

  let currency = "JPY";
  let minorDigits = 0;

  function setCurrency(code) {
    currency = code;
    try {
      minorDigits = new Intl.NumberFormat(LOCALE, { style: "currency", currency: code })
        .resolvedOptions().maximumFractionDigits;
    } catch (_) {
      minorDigits = 2;
    }
  }

  function number(value, digits) {
    return value.toLocaleString(LOCALE, {
      minimumFractionDigits: digits,
      maximumFractionDigits: digits,
    });
  }

  function money(minor) {
    // The API gives money in minor units of the reporting currency.
    const major = minor / 10 ** minorDigits;
    try {
      return major.toLocaleString(LOCALE, {
        style: "currency",
        currency: currency,
        maximumFractionDigits: minorDigits,
      });
    } catch (_) {
      return currency + " " + number(major, minorDigits);
    }
  }

  /** A value for people: rates as %, money with separators and the currency, null as "—". */
  function format(kind, value) {
    if (value === null || value === undefined) return NULL_TEXT;
    switch (kind) {
      case "rate": return number(value * 100, 1) + "%";
      case "money": return money(value);
      case "hours": return number(value, 1) + " h";
      case "days": return number(value, 1) + " d";
      case "ratio": return number(value, 1) + "×";
      case "score": return number(value, Number.isInteger(value) ? 0 : 1);
      default: return Number.isInteger(value) ? number(value, 0) : number(value, 2);
    }
  }

  function formatChange(kind, delta) {
    const sign = delta > 0 ? "+" : delta < 0 ? "−" : "±";
    const size = Math.abs(delta);
    if (kind === "rate") return sign + number(size * 100, 1) + " pp";
    return sign + format(kind, size);
  }

  function pick(object, dotted) {
    let value = object;
    for (const part of dotted.split(".")) {
      if (value === null || value === undefined) return null;
      value = value[part];
    }
    return value === undefined ? null : value;
  }

  function day(iso) {
    return new Date(iso + "T00:00:00Z");
  }

  function dayText(date) {
    return date.toLocaleDateString("en-GB", {
      day: "numeric", month: "short", year: "numeric", timeZone: "UTC",
    });
  }

  function element(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value !== null && value !== undefined) node.setAttribute(name, value);
    }
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  /* ---------- token, range, API ---------- */

  function takeToken() {
    const given = new URLSearchParams(location.hash.slice(1)).get("token");
    if (given) {
      sessionStorage.setItem(TOKEN_KEY, given);
      // Off the address bar, so that a copied link or a shared screen does not carry it.
      history.replaceState(null, "", location.pathname + location.search);
      return given;
    }
    return sessionStorage.getItem(TOKEN_KEY);
  }

  function asked() {
    const query = new URLSearchParams(location.search);
    const params = {};
    for (const name of ["from", "to", "granularity", "source", "campaign_id"]) {
      const value = query.get(name);
      if (value) params[name] = value;
    }
    return params;
  }

  function path(base, params, names) {
    const query = new URLSearchParams();
    for (const name of names) if (params[name]) query.set(name, params[name]);
    const text = query.toString();
    return text ? base + "?" + text : base;
  }

  class ApiError extends Error {
    constructor(status, detail) {
      super(detail);
      this.status = status;
      this.detail = detail;
    }
  }

  async function getJson(url, token) {
    let response;
    try {
      response = await fetch(url, {
        headers: { Authorization: "Bearer " + token, Accept: "application/json" },
        cache: "no-store",
      });
    } catch (error) {
      throw new ApiError(0, "the KPI service could not be reached (" + error.message + ")");
    }
    if (response.ok) return response.json();
    let detail = response.statusText;
    try {
      const problem = await response.json();
      detail = problem.detail || problem.title || detail;
      for (const field of problem.errors || []) detail += " · " + field.name + ": " + field.reason;
    } catch (_) {
      // not problem+json: keep the status text
    }
    throw new ApiError(response.status, detail);
  }

  /* ---------- page state ---------- */

  function setState(state) {
    document.body.dataset.state = state;
  }

  function showMessage(text, kind) {
    const box = document.getElementById("message");
    box.textContent = text;
    box.className = "message" + (kind ? " " + kind : "");
    box.hidden = !text;
  }

  function setScope(text) {
    document.getElementById("scope").textContent = text;
  }

  function askForToken(reason) {
    document.getElementById("content").hidden = true;
    setScope("Waiting for a token.");
    document.getElementById("token-form").hidden = false;
    if (reason) {
      showMessage(reason, "error");
      setState("error");
    } else {
      showMessage("");
      setState("token");
    }
  }

  function fail(error) {
    if (error instanceof ApiError && error.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      askForToken(
        "The token is missing, invalid or expired (401: " + error.detail + "). " +
        "Paste a new one with the kpi:read scope."
      );
      return;
    }
    if (error instanceof ApiError && error.status === 403) {
      sessionStorage.removeItem(TOKEN_KEY);
      askForToken("The token lacks the kpi:read scope (403: " + error.detail + ").");
      return;
    }
    let text;
    if (error instanceof ApiError && error.status === 422) {
      text = "The range is not valid: " + error.detail + ".";
    } else if (error instanceof ApiError && error.status === 0) {
      text = "No data: " + error.detail + ".";
    } else if (error instanceof ApiError) {
      text = "The KPI service answered " + error.status + ": " + error.detail + ".";
    } else {
      text = "The dashboard failed: " + (error && error.message ? error.message : error) + ".";
    }
    document.getElementById("content").hidden = true;
    setScope("No data.");
    showMessage(text, "error");
    setState("error");
  }

  /* ---------- rendering ---------- */

  function fillRange(values) {
    const form = document.getElementById("range");
    for (const name of ["from", "to", "granularity"]) {
      if (values[name]) form.elements[name].value = values[name];
    }
  }

  function renderScope(report) {
    const first = day(report.from);
    const last = new Date(day(report.to).getTime() - 86400000);
    const parts = [
      dayText(first) + " – " + dayText(last),
      "per " + report.granularity,
      report.timezone,
      "money in " + report.currency,
      "as of " + new Date().toLocaleTimeString(LOCALE, { hour: "2-digit", minute: "2-digit" }),
    ];
    const filters = report.filters || {};
    if (filters.source) parts.push("source " + filters.source);
    if (filters.campaign_id) parts.push("campaign " + filters.campaign_id);
    setScope(parts.join(" · "));
    fillRange(report);
    const notes = document.getElementById("notes");
    notes.replaceChildren(...(report.notes || []).map((note) => element("li", {}, note)));
  }

  function inProgress(period, timezone) {
    // en-CA formats a date as YYYY-MM-DD: comparable with the API's dates as text.
    const today = new Date().toLocaleDateString("en-CA", { timeZone: timezone });
    return today < period.end;
  }

  function catalogue(department, kpis) {
    // The KPIs named above, then any the API added since, under their own names.
    const known = KPIS[department] || [];
    const listed = new Set(known.flatMap((row) => [row[0], row[0].split(".")[0]]));
    const extra = [];
    for (const [name, value] of Object.entries(kpis)) {
      const names = value !== null && typeof value === "object"
        ? Object.keys(value).map((part) => name + "." + part)
        : [name];
      for (const dotted of names.filter((n) => !listed.has(n))) {
        const kind = dotted.endsWith("_rate") ? "rate" : "number";
        extra.push([dotted, dotted.replace(/[._]/g, " "), kind, null, null]);
      }
    }
    return known.concat(extra);
  }

  function trend(kind, better, now, before) {
    if (now === null || before === null) return { direction: "none", mood: "", text: "" };
    const delta = now - before;
    const direction = Math.abs(delta) < 1e-9 ? "flat" : delta > 0 ? "up" : "down";
    const mood = direction === "flat" || !better ? "neutral" : direction === better ? "good" : "bad";
    const arrow = { up: "▲", down: "▼", flat: "▶" }[direction];
    return { direction, mood, text: arrow + " " + formatChange(kind, delta) };
  }

  function tile(department, row, total, last, before) {
    const [name, label, kind, better, definition] = row;
    const value = pick(total, name);
    const now = last ? pick(last.kpis[department], name) : null;
    const then = before ? pick(before.kpis[department], name) : null;
    const change = trend(kind, better, now, then);
    const compared = last && before
      ? last.label + ": " + format(kind, now) + " · " + before.label + ": " + format(kind, then)
      : "one period only: no trend";
    return element(
      "div",
      {
        class: "tile",
        "data-kpi": department + "." + name,
        "data-value": JSON.stringify(value),
        title: definition || null,
      },
      element("div", { class: "label" }, label),
      element("div", { class: "value" }, format(kind, value)),
      element(
        "div",
        { class: "trend " + change.mood, "data-trend": change.direction, title: compared },
        change.text || NULL_TEXT
      )
    );
  }

  function renderTiles(report) {
    const periods = report.periods || [];
    const last = periods.length ? periods[periods.length - 1] : null;
    const before = periods.length > 1 ? periods[periods.length - 2] : null;
    let hint = "Each tile: the whole range.";
    if (last && before) {
      const partial = inProgress(last, report.timezone) ? " (so far)" : "";
      hint += " Arrows: " + last.label + partial + " against " + before.label +
        ", green when better, red when worse.";
    }
    document.getElementById("tiles-hint").textContent = hint;
    const sections = [];
    for (const [department, title] of DEPARTMENTS) {
      const kpis = report.total.kpis[department];
      if (!kpis) continue;
      const tiles = catalogue(department, kpis).map((row) =>
        tile(department, row, kpis, last, before)
      );
      sections.push(
        element(
          "section",
          { class: "card department", "data-department": department },
          element("h2", {}, title),
          element("div", { class: "tiles" }, ...tiles)
        )
      );
    }
    document.getElementById("departments").replaceChildren(...sections);
  }

  function renderSlaTable(sla) {
    const rows = sla.handoffs.map((handoff) => {
      const back = Object.entries(handoff.rejected || {}).filter(([, r]) => r.total);
      const cell = element("td", {});
      if (!back.length) cell.append(NULL_TEXT);
      for (const [kind, rejected] of back) {
        cell.append(
          element("div", {}, kind.replace(/_/g, " ") + " " + rejected.total),
          element(
            "span",
            { class: "reasons" },
            rejected.reasons.map((r) => r.reason + (r.count > 1 ? " ×" + r.count : "")).join(", ")
          )
        );
      }
      return element(
        "tr",
        { "data-handoff": handoff.handoff },
        element("td", {}, HANDOFFS[handoff.handoff] || handoff.handoff),
        element("td", {}, format("count", handoff.passed)),
        element("td", {}, format("count", handoff.accepted_in_sla)),
        element("td", {}, format("count", handoff.breached)),
        element("td", {}, format("count", handoff.open)),
        cell
      );
    });
    document.querySelector("#sla-table tbody").replaceChildren(...rows);
  }

  /* ---------- charts ---------- */

  const CONFIG = { displayModeBar: false, responsive: true };

  function layout(extra) {
    return Object.assign(
      {
        font: { family: FONT, size: 12, color: COLORS.ink },
        paper_bgcolor: "rgba(0,0,0,0)",
        plot_bgcolor: "rgba(0,0,0,0)",
        hoverlabel: { font: { family: FONT } },
      },
      extra
    );
  }

  function plotFunnel(funnel) {
    const stages = funnel.stages;
    const labels = stages.map((s) => STAGES[s.stage] || s.stage);
    const annotations = stages.map((stage, i) => {
      let text = i === 0 ? "captured" : "";
      if (i > 0) {
        const previous = STAGES_BEFORE[stages[i - 1].stage] || stages[i - 1].stage;
        text = format("rate", stage.conversion_from_previous) + " of " + previous;
        if (stage.median_days_from_previous !== null) {
          text += " · " + format("days", stage.median_days_from_previous);
        }
      }
      return {
        xref: "paper", x: 1.02, xanchor: "left", yref: "y", y: labels[i],
        text: text, showarrow: false, font: { size: 12, color: COLORS.muted },
      };
    });
    return Plotly.newPlot(
      "funnel",
      [
        {
          type: "funnel",
          y: labels,
          x: stages.map((s) => s.count),
          textinfo: "value",
          textposition: "inside",
          textfont: { size: 15, color: "#ffffff" },
          marker: { color: COLORS.funnel.slice(0, stages.length) },
          connector: { line: { color: COLORS.line, width: 1 }, fillcolor: "#edf2f8" },
          hovertemplate: "%{y}: %{x}<extra></extra>",
          cliponaxis: false,
        },
      ],
      layout({
        margin: { l: 80, r: 170, t: 8, b: 8 },
        height: 300,
        showlegend: false,
        annotations: annotations,
        yaxis: { tickfont: { size: 13 } },
      }),
      CONFIG
    );
  }

  function plotSla(sla) {
    const handoffs = sla.handoffs;
    const labels = handoffs.map((h) => HANDOFFS[h.handoff] || h.handoff);
    const text = handoffs.map((h) =>
      h.compliance_rate === null
        ? ""
        : format("rate", h.compliance_rate) + "  (" + h.accepted_in_sla + " of " +
          (h.accepted_in_sla + h.breached) + ")"
    );
    const annotations = handoffs
      .map((h, i) => {
        if (h.compliance_rate !== null) return null;
        let note = NULL_TEXT + " no SLA to accept";
        if (h.handoff === "churn_risk") {
          note = NULL_TEXT + " " + h.passed + " flagged";
          if (h.churned_after_risk !== null) note += ", " + h.churned_after_risk + " churned after";
          if (h.mrr_at_risk !== null) note += ", " + money(h.mrr_at_risk) + " MRR at risk";
        } else if (h.passed === 0) {
          note = NULL_TEXT + " none passed";
        }
        return {
          xref: "x", x: 0, xanchor: "left", yref: "y", y: labels[i], text: note,
          showarrow: false, font: { size: 12, color: COLORS.muted },
        };
      })
      .filter((a) => a !== null);
    return Plotly.newPlot(
      "sla",
      [
        {
          type: "bar",
          orientation: "h",
          y: labels,
          x: handoffs.map((h) => h.compliance_rate),
          text: text,
          textposition: "auto",
          insidetextanchor: "end",
          textfont: { size: 12 },
          marker: { color: COLORS.accent },
          hovertemplate: "%{y}: %{x:.1%}<extra></extra>",
          cliponaxis: false,
        },
      ],
      layout({
        margin: { l: 215, r: 16, t: 4, b: 30 },
        height: 200,
        showlegend: false,
        annotations: annotations,
        bargap: 0.35,
        xaxis: {
          range: [0, 1.02],
          tickvals: [0, 0.25, 0.5, 0.75, 1],
          tickformat: ".0%",
          gridcolor: COLORS.line,
          zeroline: false,
        },
        yaxis: { autorange: "reversed", automargin: true },
      }),
      CONFIG
    );
  }

  function plotRevenue(report) {
    const periods = report.periods || [];
    const labels = periods.map((p) => p.label);
    const customer = (p, name) => pick(p.kpis, "customer_success." + name);
    const revenue = periods.map((p) => pick(p.kpis, "field_sales.revenue_won"));
    const many = periods.length > 16;
    const rates = periods.flatMap((p) => [
      customer(p, "logo_churn_rate"), customer(p, "revenue_churn_rate"),
    ]);
    const highest = Math.max(0.1, ...rates.filter((v) => v !== null));
    const churn = (name, title, color) => ({
      type: "scatter",
      mode: "lines+markers",
      name: title,
      x: labels,
      y: periods.map((p) => customer(p, name)),
      yaxis: "y2",
      line: { color: color, width: 2 },
      marker: { size: 7 },
      connectgaps: false,
      hovertemplate: title + " %{x}: %{y:.1%}<extra></extra>",
    });
    return Plotly.newPlot(
      "revenue",
      [
        {
          type: "bar",
          name: "Revenue won",
          x: labels,
          y: revenue.map((v) => (v === null ? null : v / 10 ** minorDigits)),
          text: many ? null : revenue.map((v) => (v ? money(v) : "")),
          textposition: "outside",
          cliponaxis: false,
          marker: { color: COLORS.revenue },
          hovertext: revenue.map((v) => format("money", v)),
          hovertemplate: "Revenue won %{x}: %{hovertext}<extra></extra>",
        },
        churn("logo_churn_rate", "Logo churn", COLORS.logoChurn),
        churn("revenue_churn_rate", "MRR churn", COLORS.mrrChurn),
      ],
      layout({
        margin: { l: 70, r: 60, t: 30, b: 40 },
        height: 320,
        legend: { orientation: "h", x: 0, y: 1.12 },
        bargap: 0.45,
        xaxis: { type: "category" },
        yaxis: {
          title: { text: "revenue won, " + report.currency },
          tickformat: "~s",
          gridcolor: COLORS.line,
          rangemode: "tozero",
        },
        yaxis2: {
          title: { text: "churn" },
          overlaying: "y",
          side: "right",
          tickformat: ".0%",
          tickmode: "auto",
          range: [0, Math.ceil((highest * 1.15) / 0.1) * 0.1],
          showgrid: false,
        },
      }),
      CONFIG
    );
  }

  // On paper the charts stack one per row at a width that fits a portrait page.
  const PRINT_WIDTH = 680;

  function fitCharts(printing) {
    for (const id of ["funnel", "sla", "revenue"]) {
      const chart = document.getElementById(id);
      if (!chart || !chart.data) continue; // not plotted
      Plotly.relayout(chart, printing ? { width: PRINT_WIDTH } : { width: null, autosize: true });
    }
  }

  /* ---------- loading ---------- */

  let plotlyLoading = null;

  /** Plotly (4.8 MB) is fetched only once there is data to draw: the token form comes up at once. */
  function loadPlotly() {
    if (typeof Plotly !== "undefined") return Promise.resolve();
    if (!plotlyLoading) {
      plotlyLoading = new Promise((resolve, reject) => {
        const script = element("script", { src: PLOTLY_SRC });
        script.onload = () => resolve();
        script.onerror = () => {
          plotlyLoading = null;
          reject(new Error("the chart library did not load"));
        };
        document.head.append(script);
      });
    }
    return plotlyLoading;
  }

  async function load(token) {
    setState("loading");
    setScope("Loading…");
    showMessage("");
    document.getElementById("token-form").hidden = true;
    const params = asked();
    const report = await getJson(
      path("/v1/kpis", params, ["from", "to", "granularity", "source", "campaign_id"]),
      token
    );
    // The funnel and SLAs over exactly the report's range (their own default is in weeks).
    const range = Object.assign({}, params, { from: report.from, to: report.to });
    const [funnel, sla] = await Promise.all([
      getJson(path("/v1/funnel", range, ["from", "to", "source", "campaign_id"]), token),
      getJson(path("/v1/sla-compliance", range, ["from", "to"]), token),
      loadPlotly(),
    ]);
    setCurrency(report.currency);
    renderScope(report);
    renderTiles(report);
    renderSlaTable(sla);
    document.getElementById("revenue-hint").textContent =
      "Per " + report.granularity + ": revenue from deals won (bars), logo churn and MRR churn " +
      "(lines). Money in " + report.currency + ".";
    document.getElementById("content").hidden = false; // visible before plotting: charts size to it
    await Promise.all([plotFunnel(funnel), plotSla(sla), plotRevenue(report)]);
    setState("ready");
  }

  function start() {
    fillRange(asked());
    document.getElementById("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const token = event.target.elements.token.value.trim();
      if (!token) return;
      sessionStorage.setItem(TOKEN_KEY, token);
      event.target.reset();
      load(token).catch(fail);
    });
    document.getElementById("range").addEventListener("submit", (event) => {
      event.preventDefault();
      const query = new URLSearchParams();
      for (const [name, value] of new FormData(event.target)) if (value) query.set(name, value);
      const kept = asked();
      for (const name of ["source", "campaign_id"]) if (kept[name]) query.set(name, kept[name]);
      location.search = query.toString();
    });
    window.addEventListener("beforeprint", () => fitCharts(true));
    window.addEventListener("afterprint", () => fitCharts(false));
    document.getElementById("forget").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      askForToken(null);
    });
    const token = takeToken();
    if (!token) {
      askForToken(null);
      return;
    }
    load(token).catch(fail);
  }

  start();
})();
