import { execFileSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { homedir } from "node:os";
import { expect, Page, test } from "@playwright/test";

import { counterFrame, FRAMES, openPlayer } from "./helpers";

// The e2e video (scripts/e2e-server.sh) changes scene every 75 frames: hard cuts at 75, 150, …
test.use({ viewport: { width: 1920, height: 1080 } });

const target = process.env.CARGO_TARGET_DIR ?? `${homedir()}/.cache/clip-investigator/target`;
const e2eDir = `${target}/e2e`;
const CUTS = [75, 150, 225, 300, 375, 450, 525];

function cli(args: string[]): any {
  const out = execFileSync(`${target}/release/clip-investigator`, [...args, "--config", `${e2eDir}/config.yaml`], {
    encoding: "utf8",
  });
  return JSON.parse(out);
}

/** The query the page's form makes for "wall", auto threshold, snapping on, the defaults. */
const QUERY = {
  all_of: [{ prompt: "wall", threshold: { Auto: { k: 1.0 } } }],
  none_of: [],
  hysteresis: null,
  gap_s: 0.5,
  min_len_s: 0.5,
  snap_s: 1.0,
};

async function openChart(page: Page, path = "/") {
  await openPlayer(page, path);
  await expect(page.locator("#index-status")).toHaveAttribute("data-state", "done", { timeout: 120_000 });
  await expect(page.locator("#chart")).toHaveAttribute("data-covered", String(FRAMES), { timeout: 20_000 });
  // The Moments panel is a tab under the player.
  await page.locator("#tab-moments").click();
}

async function pageMoments(page: Page): Promise<[number, number][]> {
  return page.locator("#moments li.moment").evaluateAll((items) =>
    items.map((li) => [Number(li.getAttribute("data-start")), Number(li.getAttribute("data-end"))] as [number, number]),
  );
}

test("cuts found while indexing are ticks on the chart, and [ ] step between them", async ({ page }) => {
  await openChart(page);
  await expect(page.locator("#chart")).toHaveAttribute("data-cuts", JSON.stringify(CUTS));
  const fromCli = cli(["cuts", `${e2eDir}/pattern720.mp4`, "--json"]);
  expect(fromCli.cuts.map((c: any) => c.frame)).toEqual(CUTS);
  await page.locator("body").click({ position: { x: 5, y: 5 } });
  for (const expected of [75, 150, 225]) {
    await page.keyboard.press("]");
    await expect(page.locator("#frame-counter")).toHaveAttribute("data-frame", String(expected));
  }
  await page.keyboard.press("[");
  await expect(page.locator("#frame-counter")).toHaveAttribute("data-frame", "150");
});

test("moments from the form are bands on the chart, the CLI's moments, and survive the share link", async ({ page, browser }) => {
  await openChart(page);
  await page.locator("#moment-prompt").selectOption("wall");
  await page.locator("#moment-threshold").fill("auto");
  await page.locator("#moment-find").click();
  await expect(page.locator("#moments-summary")).toBeVisible();
  const found = await pageMoments(page);
  const reference = cli([
    "moments", `${e2eDir}/pattern720.mp4`, "--prompt", "wall", "--threshold", "auto",
    "--gap", "0.5", "--min-len", "0.5", "--snap-cuts", "--snap-s", "1", "--json",
  ]);
  expect(found).toEqual(reference.moments.map((m: any) => [m.start_frame, m.end_frame]));
  expect(found.length).toBeGreaterThan(0);
  await expect(page.locator("#chart")).toHaveAttribute("data-bands", JSON.stringify(found));
  await page.screenshot({ path: `${e2eDir}/moments.png` });
  // The share link carries the query; a fresh browser draws the same bands.
  const link = new URL(page.url());
  expect(JSON.parse(link.searchParams.get("m")!)).toEqual(QUERY);
  const fresh = await (await browser.newContext({ viewport: { width: 1920, height: 1080 } })).newPage();
  await openChart(fresh, link.pathname + link.search);
  await expect(fresh.locator("#chart")).toHaveAttribute("data-bands", JSON.stringify(found));
  expect(await pageMoments(fresh)).toEqual(found);
});

test("a moment plays and stops at its end; its clip downloads with the right frames", async ({ page }) => {
  await openChart(page, `/?m=${encodeURIComponent(JSON.stringify(QUERY))}`);
  await expect(page.locator("#moments li.moment").first()).toBeVisible();
  const [[start, end]] = await pageMoments(page);
  await page.locator("#moments li.moment .play-moment").first().click();
  await expect(page.locator("#btn-play")).toBeEnabled();
  await expect.poll(() => counterFrame(page), { timeout: 30_000 }).toBe(end);
  // Stopped there: a moment later it is still the last frame.
  await page.waitForTimeout(500);
  expect(await counterFrame(page)).toBe(end);

  const download = page.waitForEvent("download", { timeout: 60_000 });
  await page.locator("#moments li.moment .clip-moment").first().click();
  const file = await download;
  expect(file.suggestedFilename()).toMatch(/^pattern720_\d\dm\d\d\.\ds-\d\dm\d\d\.\ds\.mp4$/);
  const saved = `${e2eDir}/downloaded-clip.mp4`;
  await file.saveAs(saved);
  const probe = JSON.parse(execFileSync(`${target}/release/clip-investigator`, ["probe", saved, "--json"], { encoding: "utf8" }));
  expect(probe.frames).toBe(end - start + 1);
  await expect(page.locator("#clip-note")).toContainText("saved");
});

test("Shift-drag picks a span that downloads as a clip", async ({ page }) => {
  await openChart(page);
  const point = async (f: number) => {
    const p = await page.evaluate((f) => (window as any).clipChart.pointOfFrame(f), f);
    expect(p).not.toBeNull();
    return { x: p[0], y: p[1] };
  };
  const a = await point(100);
  const b = await point(160);
  await page.keyboard.down("Shift");
  await page.mouse.move(a.x, a.y);
  await page.mouse.down();
  await page.mouse.move(b.x, b.y, { steps: 5 });
  await page.mouse.up();
  await page.keyboard.up("Shift");
  await expect(page.locator("#selection")).toHaveAttribute("data-start", "100");
  await expect(page.locator("#selection")).toHaveAttribute("data-end", "160");
  const download = page.waitForEvent("download", { timeout: 60_000 });
  await page.locator("#selection-clip").click();
  const saved = `${e2eDir}/selection-clip.mp4`;
  await (await download).saveAs(saved);
  const probe = JSON.parse(execFileSync(`${target}/release/clip-investigator`, ["probe", saved, "--json"], { encoding: "utf8" }));
  expect(probe.frames).toBe(61);
});

test("clip requests: another site's, backwards or too long are refused; one at a time per viewer; nothing left behind", async ({ page }) => {
  await openChart(page);
  const info = await (await page.request.post("/api/video_info")).json();
  const foreign = await page.request.post(`/api/clip?video=${info.id}&viewer=x&from=0&to=10`, {
    headers: { Origin: "http://evil.example" },
  });
  expect(foreign.status()).toBe(403);
  const backwards = await page.request.post(`/api/clip?video=${info.id}&viewer=x&from=10&to=5`);
  expect(backwards.status()).toBe(400);
  expect(await backwards.text()).toContain("from <= to");
  // The e2e config allows 10 s: the whole 20 s video is too long.
  const long = await page.request.post(`/api/clip?video=${info.id}&viewer=x&from=0&to=599`);
  expect(long.status()).toBe(400);
  expect(await long.text()).toContain("clip_max_s");
  // One export per viewer at a time: a second while the first encodes gets 409.
  const first = page.request.post(`/api/clip?video=${info.id}&viewer=busy&from=0&to=299`);
  await expect
    .poll(async () => (await (await page.request.get("/api/clip_progress?viewer=busy")).json()).running, { intervals: [20] })
    .toBe(true);
  const second = await page.request.post(`/api/clip?video=${info.id}&viewer=busy&from=0&to=10`);
  expect(second.status()).toBe(409);
  expect((await first).status()).toBe(200);
  // Once it is done the viewer may export again, and nothing is left in the clip folder.
  expect((await page.request.post(`/api/clip?video=${info.id}&viewer=busy&from=0&to=10`)).status()).toBe(200);
  expect(readdirSync(`${e2eDir}/embeddings/clips`)).toEqual([]);
});
