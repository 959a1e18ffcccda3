import { execFileSync } from "node:child_process";
import { homedir } from "node:os";
import { expect, Page, test } from "@playwright/test";

import { expectShowing, openPlayer } from "./helpers";

// Adapted prompts on the library's short video (scripts/e2e-server.sh: 90 frames, its frames
// carrying their index; the tiny CLIP fixture): label two prompts by Shift-dragging, Adapt one
// in the Evaluate panel, and check the page against `adapt --json` on the same labels.
test.use({ viewport: { width: 1920, height: 1080 } });

const target = process.env.CARGO_TARGET_DIR ?? `${homedir()}/.cache/clip-investigator/target`;
const e2eDir = `${target}/e2e`;
const short = `${e2eDir}/library/short.mp4`;
const SHORT_FRAMES = 90;

function cli(args: string[]): any {
  const out = execFileSync(`${target}/release/clip-investigator`, [...args, "--config", `${e2eDir}/config.yaml`], {
    encoding: "utf8",
  });
  return JSON.parse(out);
}

async function shortId(page: Page): Promise<string> {
  const library = await (await page.request.post("/api/library")).json();
  return library.videos.find((v: any) => v.name === "short.mp4").id;
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

async function label(page: Page, prompt: string, from: number, to: number) {
  await shiftDrag(page, from, to);
  await expect(page.locator("#label-as")).toBeVisible();
  await page.locator("#label-prompt").selectOption(prompt);
  await page.locator("#label-selection").click();
  await expect(page.locator(`#label-track .label[data-prompt="${prompt}"][data-start="${from}"]`)).toHaveCount(1);
}

/** The `data-value`s of a row of the Adapt table. */
async function adaptRow(page: Page, row: string): Promise<Record<string, any>> {
  return page.locator(`#adapt-table tr[data-row="${row}"] td[data-metric]`).evaluateAll((cells) =>
    Object.fromEntries(
      cells.map((c) => {
        const v = c.getAttribute("data-value")!;
        return [c.getAttribute("data-metric"), v === "null" ? null : JSON.parse(v)];
      }),
    ),
  );
}

async function adaptedCurves(page: Page): Promise<{ label: string; mean: number }[]> {
  return JSON.parse((await page.locator("#chart").getAttribute("data-adapted")) ?? "[]");
}

async function setAlpha(page: Page, alpha: number) {
  await page.locator("#adapt-alpha").evaluate((el, v) => {
    (el as HTMLInputElement).value = String(v);
    el.dispatchEvent(new Event("input", { bubbles: true }));
  }, alpha);
}

test("label two prompts, Adapt one: its curve, α, the numbers of adapt --json, label next, and a reload", async ({ page }) => {
  const id = await shortId(page);
  await openPlayer(page, `/?video=${id}&p=door&p=stairs`);
  await expect(page.locator("#index-status")).toHaveAttribute("data-state", "done", { timeout: 120_000 });
  await expect(page.locator("#chart")).toHaveAttribute("data-covered", String(SHORT_FRAMES), { timeout: 20_000 });
  await label(page, "door", 10, 25);
  await label(page, "door", 50, 65);
  await label(page, "stairs", 30, 42);
  await label(page, "stairs", 70, 85);

  // Adapt "door" in the Evaluate panel; the job reports progress, then the result.
  await page.locator("#tab-evaluate").click();
  await page.locator("#adapt-prompt").selectOption("door");
  await page.locator("#adapt-run").click();
  const result = page.locator('#adapt-result[data-prompt="door"]');
  await expect(result).toBeVisible({ timeout: 60_000 });
  const adapterId = await result.getAttribute("data-id");
  expect(adapterId).toMatch(/^[0-9a-f]{16}$/);

  // The adapted curve is on the chart, in the probability axis, and the link names it.
  await expect(page.locator("#chart")).toHaveAttribute("data-prompts", /door \(adapted\)/, { timeout: 20_000 });
  const before = await adaptedCurves(page);
  expect(before.map((c) => c.label)).toEqual(["door (adapted)"]);
  expect(before[0].mean).toBeGreaterThanOrEqual(0);
  expect(before[0].mean).toBeLessThanOrEqual(1);
  await expect.poll(() => new URL(page.url()).searchParams.getAll("ad")).toEqual([adapterId]);

  // The numbers are adapt --json's on the same labels (the CLI retrains the same adapter).
  const report = cli(["adapt", short, "--prompt", "door", "--json"]);
  expect(report.id).toBe(adapterId);
  const zeroShot = await adaptRow(page, "zero_shot");
  const adapted = await adaptRow(page, "adapted");
  const difference = await adaptRow(page, "difference");
  expect(zeroShot.ap).toBeCloseTo(report.zero_shot.ap, 12);
  expect(zeroShot.roc_auc).toBeCloseTo(report.zero_shot.roc_auc, 12);
  expect(adapted.ap).toBeCloseTo(report.adapted.ap, 12);
  expect(adapted.roc_auc).toBeCloseTo(report.adapted.roc_auc, 12);
  expect(adapted.best_f1).toBeCloseTo(report.adapted.best_f1, 12);
  if (report.ap_difference !== null) {
    expect(difference.ap.low).toBeCloseTo(report.ap_difference.low, 12);
    expect(difference.ap.high).toBeCloseTo(report.ap_difference.high, 12);
  }
  expect(Number(await result.getAttribute("data-chosen-alpha"))).toBeCloseTo(report.alpha, 12);

  // The α slider moves the curve, and the metrics follow (that α in every fold).
  const other = report.alpha >= 0.5 ? 0 : 1;
  await setAlpha(page, other);
  await expect(result).toHaveAttribute("data-alpha", String(other));
  await expect.poll(async () => (await adaptedCurves(page))[0].mean).not.toBeCloseTo(before[0].mean, 6);
  const point = report.by_alpha.find((p: any) => Math.abs(p.alpha - other) < 1e-9);
  expect((await adaptRow(page, "adapted")).ap).toBeCloseTo(point.ap, 12);
  await expect.poll(() => new URL(page.url()).searchParams.getAll("ad")).toEqual([`${adapterId}:${other}`]);

  // A "label next" item seeks to its exact frame (read back from the image's pixels).
  const next = page.locator("#label-next li.label-next").first();
  await expect(next).toBeVisible();
  const frame = Number(await next.getAttribute("data-frame"));
  expect(report.label_next.map((l: any) => l.frame)).toContain(frame);
  await next.locator("button").click();
  await expectShowing(page, frame);

  // A reload keeps the adapted prompt (and its α) from the link.
  await page.reload();
  await expect(page.locator("#player")).toHaveAttribute("data-hydrated", "true", { timeout: 20_000 });
  await expect(page.locator("#chart")).toHaveAttribute("data-prompts", /door \(adapted\)/, { timeout: 30_000 });
  await expect(page.locator('#adapt-result[data-prompt="door"]')).toHaveAttribute("data-alpha", String(other));
});

test("at 1366x768 the panel in use sits under the video, inside the window", async ({ page }) => {
  await page.setViewportSize({ width: 1366, height: 768 });
  await openPlayer(page, "/");
  await page.locator("#tab-evaluate").click();
  const player = await page.locator("#player").boundingBox();
  const panels = await page.locator("#panels").boundingBox();
  const evaluate = await page.locator("#evaluate-run").boundingBox();
  expect(player && panels && evaluate).toBeTruthy();
  // Under the video, in its column, and its controls visible without scrolling.
  expect(Math.abs(panels!.x - player!.x)).toBeLessThan(2);
  expect(panels!.y).toBeGreaterThan(player!.y + player!.height - 1);
  expect(evaluate!.y + evaluate!.height).toBeLessThan(768);
  // The other tabs show their own panel in the same place.
  await page.locator("#tab-moments").click();
  await expect(page.locator("#moment-find")).toBeInViewport();
  await expect(page.locator("#evaluate-run")).toBeHidden();
});
