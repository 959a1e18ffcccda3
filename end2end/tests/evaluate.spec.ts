import { execFileSync } from "node:child_process";
import { homedir } from "node:os";
import { resolve } from "node:path";
import { expect, Page, test } from "@playwright/test";

import { expectShowing, FRAMES, openPlayer } from "./helpers";

// Labels, the Evaluate panel and the dataset, on the e2e video (scripts/e2e-server.sh: 600
// frames, a scene change every 75, the tiny CLIP fixtures). Labels persist across these tests
// (one server, one cache folder per run), in the order below.
test.use({ viewport: { width: 1920, height: 1080 } });

const target = process.env.CARGO_TARGET_DIR ?? `${homedir()}/.cache/clip-investigator/target`;
const e2eDir = `${target}/e2e`;
const video = `${e2eDir}/pattern720.mp4`;
const fixtures = resolve("../server/tests/fixtures");

function cli(args: string[]): any {
  const out = execFileSync(`${target}/release/clip-investigator`, [...args, "--config", `${e2eDir}/config.yaml`], {
    encoding: "utf8",
  });
  return JSON.parse(out);
}

async function openChart(page: Page, path = "/") {
  await openPlayer(page, path);
  await expect(page.locator("#index-status")).toHaveAttribute("data-state", "done", { timeout: 120_000 });
  await expect(page.locator("#chart")).toHaveAttribute("data-covered", String(FRAMES), { timeout: 20_000 });
  // The Evaluate panel is a tab under the player.
  await page.locator("#tab-evaluate").click();
}

async function shiftDrag(page: Page, from: number, to: number) {
  const point = async (f: number) => {
    const p = await page.evaluate((f) => (window as any).clipChart.pointOfFrame(f), f);
    expect(p).not.toBeNull();
    return { x: p[0], y: p[1] };
  };
  const a = await point(from);
  const b = await point(to);
  await page.keyboard.down("Shift");
  await page.mouse.move(a.x, a.y);
  await page.mouse.down();
  await page.mouse.move(b.x, b.y, { steps: 5 });
  await page.mouse.up();
  await page.keyboard.up("Shift");
}

/** The metrics of the panel's row for (model, prompt), by their exact `data-value`s. */
async function rowMetrics(page: Page, model: string, prompt: string): Promise<Record<string, number | null>> {
  const row = page.locator(`#evaluate-table tr[data-model="${model}"][data-prompt="${prompt}"]`);
  await expect(row).toHaveCount(1);
  return row.locator("td[data-metric]").evaluateAll((cells) =>
    Object.fromEntries(
      cells.map((c) => {
        const v = c.getAttribute("data-value");
        return [c.getAttribute("data-metric"), v === "null" ? null : Number(v)];
      }),
    ),
  );
}

test("Shift-drag then Label makes a label, and a reload keeps it", async ({ page }) => {
  await openChart(page);
  await shiftDrag(page, 100, 160);
  await expect(page.locator("#label-as")).toBeVisible();
  await page.locator("#label-prompt").selectOption("wall");
  await page.locator("#label-selection").click();
  const label = page.locator('#label-track .label[data-prompt="wall"]');
  await expect(label).toHaveAttribute("data-start", "100");
  await expect(label).toHaveAttribute("data-end", "160");
  // The track lies over the frames it labels: its left edge is where the chart draws frame 100.
  const p = await page.evaluate(() => (window as any).clipChart.pointOfFrame(100));
  const box = await label.boundingBox();
  expect(Math.abs(box!.x - p[0])).toBeLessThan(6);
  await page.reload();
  await expect(page.locator("#player")).toHaveAttribute("data-hydrated", "true", { timeout: 20_000 });
  await expect(page.locator('#label-track .label[data-prompt="wall"]')).toHaveAttribute("data-start", "100");
  // The CLI reads the same labels file.
  const stored = cli(["labels", video, "--json"]);
  expect(stored.labels.map((s: any) => [s.prompt, s.start_frame, s.end_frame])).toEqual([["wall", 100, 160]]);
  // Click a label, adjust its end, save.
  await page.locator('#label-track .label[data-prompt="wall"]').click();
  await page.locator("#label-end").fill("170");
  await page.locator("#label-save").click();
  await expect(page.locator('#label-track .label[data-prompt="wall"]')).toHaveAttribute("data-end", "170");
});

test("the Evaluate panel's numbers are evaluate --json's, and a false positive seeks to its first frame", async ({ page }) => {
  await openChart(page);
  // A second labelled scene, imported as CSV in times (10 s to 12.5 s = frames 300 to 375).
  const info = await (await page.request.post("/api/video_info")).json();
  const imported = await page.request.post("/api/edit_labels", {
    data: { video: info.id, edit: { Import: { csv: "prompt,start_time,end_time\nwall,10,12.5\n", replace: false } } },
  });
  expect(imported.status()).toBe(200);
  await page.reload();
  await expect(page.locator('#label-track .label[data-prompt="wall"]')).toHaveCount(2, { timeout: 20_000 });
  await expect(page.locator("#index-status")).toHaveAttribute("data-state", "done", { timeout: 120_000 });
  await page.locator("#evaluate-run").click();
  await expect(page.locator("#evaluate-table")).toBeVisible({ timeout: 30_000 });
  const ours = await rowMetrics(page, "tiny-clip", "wall");
  const fromCli = cli(["evaluate", video, "--json"]).models[0].prompts.find((p: any) => p.prompt === "wall");
  expect(ours.ap).toBeCloseTo(fromCli.ap, 12);
  expect(ours.roc_auc).toBeCloseTo(fromCli.roc_auc, 12);
  expect(ours.f1).toBeCloseTo(fromCli.best_f1.f1, 12);
  expect(ours.threshold).toBeCloseTo(fromCli.best_f1.threshold, 12);
  expect(ours.precision).toBeCloseTo(fromCli.best_f1.precision, 12);
  expect(ours.recall).toBeCloseTo(fromCli.best_f1.recall, 12);
  expect([ours.positives, ours.negatives]).toEqual([fromCli.positives, fromCli.negatives]);
  expect(ours.positives).toBe(71 + 76);
  // The chart draws the errors of the evaluated prompt, and the link carries it.
  await expect(page.locator("#evaluate-prompt")).toHaveValue("wall");
  const errors = JSON.parse((await page.locator("#chart").getAttribute("data-errors")) ?? "[]");
  expect(errors.length).toBe(fromCli.errors.length);
  expect(page.url()).toContain("eval=wall");
  const falsePositive = page.locator('#error-list li.error-span[data-kind="fp"]').first();
  await expect(falsePositive).toBeVisible();
  const start = Number(await falsePositive.getAttribute("data-start"));
  await falsePositive.locator("button").click();
  await expectShowing(page, start);
  // `e` steps to the next error's first frame.
  const starts: number[] = errors.map((e: [number, number, boolean]) => e[0]);
  const next = starts.find((s) => s > start);
  if (next !== undefined) {
    await page.locator("body").click({ position: { x: 5, y: 5 } });
    await page.keyboard.press("e");
    await expectShowing(page, next);
  }
  // The share link opens the same evaluation in a fresh page.
  const fresh = await page.context().newPage();
  await fresh.goto(page.url());
  await expect(fresh.locator("#evaluate-table")).toBeVisible({ timeout: 60_000 });
  expect((await rowMetrics(fresh, "tiny-clip", "wall")).ap).toBeCloseTo(fromCli.ap, 12);
  await fresh.close();
});

test("two models side by side, with the difference in AP and its interval", async ({ page }) => {
  await openChart(page, "/?compare=tiny-clip-gelu");
  await expect(page.locator("#index-status-compare")).toHaveAttribute("data-state", "done", { timeout: 120_000 });
  await page.locator("#evaluate-run").click();
  await expect(page.locator("#evaluate-comparison")).toBeVisible({ timeout: 30_000 });
  const first = await rowMetrics(page, "tiny-clip", "wall");
  const second = await rowMetrics(page, "tiny-clip-gelu", "wall");
  const both = cli([
    "evaluate", video, "--json",
    "--model", `${fixtures}/tiny-clip`, "--model", `${fixtures}/tiny-clip-gelu`,
  ]);
  expect(first.ap).toBeCloseTo(both.models[0].prompts[0].ap, 12);
  expect(second.ap).toBeCloseTo(both.models[1].prompts[0].ap, 12);
  const row = page.locator('#evaluate-comparison tr[data-prompt="wall"]');
  const difference = Number(await row.locator('td[data-metric="difference"]').getAttribute("data-value"));
  expect(difference).toBeCloseTo(both.comparison[0].ap_difference, 12);
  const low = Number(await row.locator('td[data-metric="low"]').getAttribute("data-value"));
  expect(low).toBeCloseTo(both.comparison[0].interval_95[0], 12);
  await expect(page.locator("#pr-curve")).toHaveAttribute("data-lines", "2");
});

test("the dataset downloads as a zip of frames and metadata", async ({ page }) => {
  await openChart(page);
  const download = page.waitForEvent("download", { timeout: 60_000 });
  await page.locator("#dataset-download").click();
  const saved = `${e2eDir}/dataset.zip`;
  await (await download).saveAs(saved);
  const listing = execFileSync("unzip", ["-l", saved], { encoding: "utf8" });
  expect(listing).toContain("metadata.jsonl");
  expect(listing).toMatch(/frames\/\d{5}_\d{6}\.jpg/);
  const metadata = execFileSync("unzip", ["-p", saved, "metadata.jsonl"], { encoding: "utf8" });
  const rows = metadata.trim().split("\n").map((l) => JSON.parse(l));
  expect(rows.length).toBeGreaterThan(5);
  for (const row of rows) {
    const inside = (row.frame >= 100 && row.frame <= 170) || (row.frame >= 300 && row.frame <= 375);
    expect(row.label === 1).toBe(inside);
    expect(row.video).toBe("pattern720.mp4");
  }
  await expect(page.locator("#dataset-note")).toContainText("downloaded");
  // Another site cannot build one.
  const info = await (await page.request.post("/api/video_info")).json();
  const foreign = await page.request.post(`/api/dataset?video=${info.id}`, { headers: { Origin: "http://evil.example" } });
  expect(foreign.status()).toBe(403);
});
