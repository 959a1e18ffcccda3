import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { expect, Page, test } from "@playwright/test";

import { counterFrame, displayedPatternIndex, expectShowing, FRAMES, openPlayer } from "./helpers";

// The e2e server (scripts/e2e-server.sh) serves the 600-frame pattern video, indexed with the
// tiny CLIP fixture (index.spec.ts runs first and waits for that), with the prompt "wall".
// A 1920x1080 window: the chart then has more pixels than the video has frames, so every
// frame can be clicked exactly (narrower charts need the zoom for that).
test.use({ viewport: { width: 1920, height: 1080 } });

const target = process.env.CARGO_TARGET_DIR ?? `${homedir()}/.cache/clip-investigator/target`;
const e2eDir = `${target}/e2e`;

/** Scores as the CLI computes them from the same cache: the reference for the page. */
function cliScores(prompts: string[]): Record<string, number[]> {
  const args = ["scores", `${e2eDir}/pattern720.mp4`, "--config", `${e2eDir}/config.yaml`, "--json"];
  for (const p of prompts) args.push("--prompt", p);
  const out = execFileSync(`${target}/release/clip-investigator`, args, { encoding: "utf8" });
  return JSON.parse(out).scores;
}

async function indexStatus(page: Page) {
  const info = await (await page.request.post("/api/video_info")).json();
  const response = await page.request.post("/api/index_status", { form: { video: info.id } });
  expect(response.ok()).toBeTruthy();
  return response.json();
}

async function openChart(page: Page, path = "/") {
  await openPlayer(page, path);
  await expect(page.locator("#index-status")).toHaveAttribute("data-state", "done", { timeout: 120_000 });
  await expect(page.locator("#chart")).toHaveAttribute("data-covered", String(FRAMES), { timeout: 20_000 });
}

/** Page coordinates of frame `f` on the chart, through the chart's own transform. */
async function chartPoint(page: Page, frame: number): Promise<{ x: number; y: number }> {
  const point = await page.evaluate((f) => (window as any).clipChart.pointOfFrame(f), frame);
  expect(point, `frame ${frame} has a pixel on the chart`).not.toBeNull();
  return { x: point[0], y: point[1] };
}

async function clickFrame(page: Page, frame: number) {
  const { x, y } = await chartPoint(page, frame);
  await page.mouse.click(x, y);
}

test("the chart draws one line per prompt, and a new prompt adds one without embedding images", async ({ page }) => {
  await openChart(page);
  await expect(page.locator("#chart")).toHaveAttribute("data-lines", "1");
  await expect(page.locator("#chart")).toHaveAttribute("data-prompts", JSON.stringify(["wall"]));
  const before = await indexStatus(page);
  await page.locator("#new-prompt").fill("a red door");
  await page.locator("#add-prompt").click();
  await expect(page.locator("#chart")).toHaveAttribute("data-lines", "2");
  await expect(page.locator("#chart")).toHaveAttribute("data-prompts", JSON.stringify(["wall", "a red door"]));
  const after = await indexStatus(page);
  expect(after.images_embedded).toBe(before.images_embedded);
  expect(after.texts_embedded).toBeLessThanOrEqual(before.texts_embedded + 1);
  // The URL carries the prompts.
  expect(new URL(page.url()).searchParams.getAll("p")).toEqual(["wall", "a red door"]);
  // Hiding a curve through its legend entry.
  await page.locator('#prompt-list li[data-prompt="wall"] .swatch-button').click();
  await expect(page.locator("#chart")).toHaveAttribute("data-lines", "1");
  // Removing a prompt.
  await page.locator('#prompt-list li[data-prompt="a red door"] .remove').click();
  await expect(page.locator("#chart")).toHaveAttribute("data-lines", "0");
});

test("a click on the chart seeks to exactly that frame", async ({ page }) => {
  await openChart(page);
  const latencies: number[] = [];
  const frames = [0, 599, 123, 300, 7];
  for (let i = 0; i < 50; i++) frames.push((i * 7919 + 13) % FRAMES);
  for (const [i, frame] of frames.entries()) {
    // Timed in the page: from the mousedown to the load of the <img> showing that frame.
    const painted = page.evaluate(
      (f) =>
        new Promise<number>((resolve) => {
          const img = document.querySelector("#frame-view") as HTMLImageElement;
          let down = 0;
          document.querySelector("#chart")!.addEventListener("mousedown", () => (down = performance.now()), { once: true, capture: true });
          const check = () => {
            if (down && img.getAttribute("data-frame") === String(f) && img.complete) resolve(performance.now() - down);
            else requestAnimationFrame(check);
          };
          requestAnimationFrame(check);
        }),
      frame,
    );
    await clickFrame(page, frame);
    const ms = await painted;
    await expect(page.locator("#frame-counter")).toHaveAttribute("data-frame", String(frame));
    if (i >= 5) latencies.push(ms);
    if (i < 5) expect(await displayedPatternIndex(page)).toBe(frame);
  }
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.round((latencies.length - 1) * p)];
  console.log(`click → exact frame painted (in-page, mousedown → <img> loaded), ${latencies.length} clicks: p50 ${pct(0.5).toFixed(1)} ms, p95 ${pct(0.95).toFixed(1)} ms`);
  // Outside the plotting area nothing happens.
  const box = (await page.locator("#chart").boundingBox())!;
  const before = await counterFrame(page);
  await page.mouse.click(box.x + 3, box.y + 3);
  await page.waitForTimeout(200);
  expect(await counterFrame(page)).toBe(before);
  // Dragging scrubs.
  const a = await chartPoint(page, 100);
  const b = await chartPoint(page, 200);
  await page.mouse.move(a.x, a.y);
  await page.mouse.down();
  await page.mouse.move(b.x, b.y, { steps: 5 });
  await page.mouse.up();
  await expectShowing(page, 200);
});

test("hovering shows every prompt's score at that frame, equal to the server's", async ({ page }) => {
  await openChart(page, "/?p=wall&p=grass");
  await expect(page.locator("#chart")).toHaveAttribute("data-lines", "2");
  const reference = cliScores(["wall", "grass"]);
  for (const frame of [0, 250, 599]) {
    const { x, y } = await chartPoint(page, frame);
    await page.mouse.move(x, y);
    const readout = page.locator("#chart-readout");
    await expect(readout).toHaveAttribute("data-frame", String(frame));
    const rows = readout.locator(".readout-row");
    await expect(rows).toHaveCount(2);
    const values: number[] = [];
    for (const prompt of ["wall", "grass"]) {
      const v = Number(await readout.locator(`.readout-row[data-prompt="${prompt}"]`).getAttribute("data-value"));
      expect(Math.abs(v - reference[prompt][frame])).toBeLessThan(1e-6);
      values.push(v);
    }
    // Sorted high to low.
    const shown = await rows.evaluateAll((els) => els.map((e) => Number(e.getAttribute("data-value"))));
    expect(shown).toEqual([...shown].sort((p, q) => q - p));
  }
});

test("a share link reproduces prompts, smoothing, view and frame", async ({ browser }) => {
  const page = await (await browser.newContext()).newPage();
  await openChart(page, "/?frame=42&p=wall&p=a%20door&smooth=5&view=softmax");
  await expectShowing(page, 42);
  await expect(page.locator("#chart")).toHaveAttribute("data-lines", "2");
  await expect(page.locator("#chart")).toHaveAttribute("data-y-label", "probability");
  await expect(page.locator("#smoothing")).toHaveValue("5");
  await expect(page.locator("#softmax")).toBeChecked();
  await expect(page.locator("#prompt-list .prompt-text")).toHaveCount(2);
  // The page keeps the link current as the view changes.
  await page.locator("#smoothing").fill("9");
  await page.locator("#smoothing").dispatchEvent("change");
  await expect.poll(() => new URL(page.url()).searchParams.get("smooth")).toBe("9");
  const url = new URL(page.url());
  expect(url.searchParams.get("view")).toBe("softmax");
  expect(url.searchParams.get("frame")).toBe("42");
});

test("search finds k moments, marks them, and a click seeks there", async ({ page }) => {
  await openChart(page);
  await page.locator("#search-text").fill("wall");
  await page.locator("#search-go").click();
  const hits = page.locator("#search-results .hit");
  await expect(hits).toHaveCount(8);
  await expect(hits.first().locator("img")).toBeVisible({ timeout: 10_000 });
  const frame = Number(await hits.nth(2).getAttribute("data-frame"));
  await hits.nth(2).click();
  await expectShowing(page, frame);
});

test("keyboard shortcuts move the playhead", async ({ page }) => {
  await openChart(page, "/?frame=100");
  await expectShowing(page, 100);
  await page.locator("body").click({ position: { x: 2, y: 2 } });
  const press = async (key: string, expected: number) => {
    await page.keyboard.press(key);
    await expect(page.locator("#frame-counter")).toHaveAttribute("data-frame", String(expected));
  };
  await press("ArrowRight", 101);
  await press("ArrowLeft", 100);
  await press("Shift+ArrowRight", 130);
  await press("Shift+ArrowLeft", 100);
  await press("End", FRAMES - 1);
  await press("Home", 0);
  await page.keyboard.press("?");
  await expect(page.locator("#help")).toBeVisible();
  await page.keyboard.press("Escape");
  await expect(page.locator("#help")).toHaveCount(0);
  await page.keyboard.press(" ");
  await expect.poll(() => counterFrame(page)).toBeGreaterThan(3);
  await page.keyboard.press(" ");
  await expect(page.locator("#btn-play")).toBeEnabled();
});

test("the CSV export equals the server's scores", async ({ page }) => {
  await openChart(page);
  const download = page.waitForEvent("download");
  await page.locator("#export-csv").click();
  const path = await (await download).path();
  const lines = readFileSync(path!, "utf8").trim().split("\n");
  expect(lines[0]).toBe("frame,time_s,wall");
  expect(lines.length).toBe(FRAMES + 1);
  const reference = cliScores(["wall"]).wall;
  for (let n = 0; n < FRAMES; n++) {
    const [frame, , value] = lines[n + 1].split(",").map(Number);
    expect(frame).toBe(n);
    expect(Math.abs(value - reference[n])).toBeLessThan(1e-6);
  }
  const png = page.waitForEvent("download");
  await page.locator("#export-png").click();
  expect((await png).suggestedFilename()).toBe("pattern720-chart.png");
});

test("zoom narrows the frames shown and double-click resets", async ({ page }) => {
  await openChart(page);
  await expect(page.locator("#chart-range")).toContainText("frames 0–599");
  const { x, y } = await chartPoint(page, 300);
  await page.mouse.move(x, y);
  for (let i = 0; i < 4; i++) await page.mouse.wheel(0, -100);
  await expect(page.locator("#chart-range")).toContainText("zoomed");
  // Clicks still land on exact frames when zoomed.
  await clickFrame(page, 310);
  await expectShowing(page, 310);
  await page.mouse.dblclick(x, y);
  await expect(page.locator("#chart-range")).toContainText("frames 0–599");
});

test("chart redraw time for 100,000 frames x 10 prompts", async ({ page }) => {
  await openChart(page);
  const times: number[] = [];
  for (let i = 0; i < 15; i++) {
    times.push(await page.evaluate(() => (window as any).clipChart.drawBenchmark(100_000, 10)));
  }
  times.sort((a, b) => a - b);
  console.log(`chart redraw, 100,000 frames x 10 prompts, 15 draws: median ${times[7].toFixed(1)} ms (min ${times[0].toFixed(1)}, max ${times[14].toFixed(1)})`);
  expect(times[7]).toBeGreaterThan(0);
});
