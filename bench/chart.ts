import { formatSize } from "./data";
import type { Row } from "./stats";

const COLORS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2"];
const esc = (s: string): string => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

interface Panel {
  title: string;
  unit: string;
  rows: Row[];
  value: (r: Row) => number | undefined;
}

/**
 * A horizontal grouped bar chart per panel: one group per method, one bar per size. Hand-written
 * SVG: three panels of bars need no chart library, and the file stays readable in a diff.
 */
export function renderChart(rows: Row[], sizes: number[], baselineRss: number | undefined): string {
  const streams = rows.filter((r) => r.kind === "write" || r.kind === "read");
  const panels: Panel[] = [
    { title: "Write throughput (MB/s, median)", unit: "MB/s", rows: streams.filter((r) => r.kind === "write"), value: (r) => r.median },
    { title: "Read throughput (MB/s, median)", unit: "MB/s", rows: streams.filter((r) => r.kind === "read"), value: (r) => r.median },
    { title: "Peak RSS of the process (MiB)", unit: "MiB", rows: streams, value: (r) => (r.maxRss > 0 && r.error === undefined ? r.maxRss / 2 ** 20 : undefined) },
  ];
  const width = 900;
  const labelWidth = 330;
  const barHeight = 9;
  const plotWidth = width - labelWidth - 80;
  let y = 70;
  const parts: string[] = [];
  parts.push(`<text x="20" y="28" font-size="17" font-weight="bold">typeorm-large-object: npm run bench</text>`);
  sizes.forEach((size, i) => {
    const x = 20 + i * 110;
    parts.push(`<rect x="${x}" y="40" width="12" height="12" fill="${COLORS[i % COLORS.length]}"/>`);
    parts.push(`<text x="${x + 17}" y="50" font-size="12">${esc(formatSize(size))}</text>`);
  });
  for (const panel of panels) {
    const methods = [...new Set(panel.rows.map((r) => r.method))];
    const max = Math.max(1, ...panel.rows.map((r) => panel.value(r) ?? 0));
    parts.push(`<text x="20" y="${y + 14}" font-size="14" font-weight="bold">${esc(panel.title)}</text>`);
    y += 26;
    for (const method of methods) {
      const group = panel.rows.filter((r) => r.method === method);
      const label = `${group[0]!.label}${panel.title.startsWith("Peak") ? ` (${group[0]!.kind})` : ""}`;
      const groupHeight = sizes.length * (barHeight + 2);
      parts.push(`<text x="${labelWidth - 8}" y="${y + groupHeight / 2 + 4}" font-size="11" text-anchor="end">${esc(label)}</text>`);
      sizes.forEach((size, i) => {
        const row = group.find((r) => r.size === size);
        const value = row === undefined ? undefined : panel.value(row);
        const barY = y + i * (barHeight + 2);
        if (value === undefined) {
          const why = row?.error !== undefined ? "failed" : row?.skipped !== undefined ? "skipped" : "";
          if (why) parts.push(`<text x="${labelWidth + 4}" y="${barY + barHeight - 1}" font-size="9" fill="#888">${why}</text>`);
          return;
        }
        const w = Math.max(1, (value / max) * plotWidth);
        parts.push(`<rect x="${labelWidth}" y="${barY}" width="${w.toFixed(1)}" height="${barHeight}" fill="${COLORS[i % COLORS.length]}"/>`);
        parts.push(`<text x="${labelWidth + w + 4}" y="${barY + barHeight - 1}" font-size="9">${value.toFixed(0)}</text>`);
      });
      y += groupHeight + 8;
    }
    if (panel.unit === "MiB") {
      const marks: [number, string][] = [[100, "100 MiB target"]];
      if (baselineRss !== undefined) marks.push([baselineRss / 2 ** 20, "bare pg connection"]);
      for (const [mib, text] of marks) {
        if (mib > max) continue;
        const x = labelWidth + (mib / max) * plotWidth;
        parts.push(`<line x1="${x}" y1="${y - 8}" x2="${x}" y2="${y - 8 - methods.length * (sizes.length * (barHeight + 2) + 8)}" stroke="#333" stroke-dasharray="4 3"/>`);
        parts.push(`<text x="${x + 3}" y="${y + 4}" font-size="10">${esc(text)}</text>`);
      }
      y += 10;
    }
    y += 20;
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}" viewBox="0 0 ${width} ${y}" font-family="Helvetica, Arial, sans-serif">\n<rect width="100%" height="100%" fill="#fff"/>\n${parts.join("\n")}\n</svg>\n`;
}
