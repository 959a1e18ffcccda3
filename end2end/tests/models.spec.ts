import { execFileSync } from "node:child_process";
import { homedir } from "node:os";
import { expect, Page, test } from "@playwright/test";

import { FRAMES, openPlayer } from "./helpers";

// scripts/e2e-server.sh offers three models (`models:`): tiny-clip (the default), tiny-clip-gelu
// and tiny-siglip. The page picks one, compares a second (two lines per prompt, the second
// dashed), shows their difference, and the share link carries all of it.
test.use({ viewport: { width: 1920, height: 1080 } });

const target = process.env.CARGO_TARGET_DIR ?? `${homedir()}/.cache/clip-investigator/target`;
const e2eDir = `${target}/e2e`;
const fixtures = `${process.cwd()}/../server/tests/fixtures`;

/** Both models' scores and their difference as the CLI computes them from the same caches. */
function cliCompare(prompts: string[], a: string, b: string) {
  const args = ["scores", `${e2eDir}/pattern720.mp4`, "--config", `${e2eDir}/config.yaml`, "--json"];
  for (const m of [a, b]) args.push("--model", `${fixtures}/${m}`);
  for (const p of prompts) args.push("--prompt", p);
  return JSON.parse(execFileSync(`${target}/release/clip-investigator`, args, { encoding: "utf8" }));
}

async function status(page: Page, model?: string) {
  const info = await (await page.request.post("/api/video_info")).json();
  const form: Record<string, string> = { video: info.id };
  if (model) form.model = model;
  const response = await page.request.post("/api/index_status", { form });
  expect(response.ok()).toBeTruthy();
  return response.json();
}

async function chartPoint(page: Page, frame: number): Promise<{ x: number; y: number }> {
  const point = await page.evaluate((f) => (window as any).clipChart.pointOfFrame(f), frame);
  expect(point, `frame ${frame} has a pixel on the chart`).not.toBeNull();
  return { x: point[0], y: point[1] };
}

async function readout(page: Page, frame: number): Promise<Record<string, number>> {
  const { x, y } = await chartPoint(page, frame);
  await page.mouse.move(x, y);
  const box = page.locator("#chart-readout");
  await expect(box).toHaveAttribute("data-frame", String(frame));
  const rows = await box.locator(".readout-row").evaluateAll((els) =>
    els.map((e) => [e.getAttribute("data-prompt")!, Number(e.getAttribute("data-value"))] as [string, number]),
  );
  return Object.fromEntries(rows);
}

test("the model picker, two models on one chart, their difference, and a share link with the models", async ({ page }) => {
  await openPlayer(page, "/?p=wall&p=grass");
  await expect(page.locator("#index-status")).toHaveAttribute("data-state", "done", { timeout: 120_000 });
  await expect(page.locator("#chart")).toHaveAttribute("data-covered", String(FRAMES), { timeout: 20_000 });
  // The picker lists the config's models, the default chosen.
  const picker = page.locator("#model");
  await expect(picker.locator("option")).toHaveText(["tiny-clip", "tiny-clip-gelu", "tiny-siglip"]);
  await expect(picker).toHaveValue("tiny-clip");
  await expect(page.locator("#chart")).toHaveAttribute("data-lines", "2");

  // A second model: it indexes in its own job, then each prompt has two lines, one dashed.
  await page.locator("#compare").selectOption("tiny-clip-gelu");
  await expect(page.locator("#index-status-compare")).toHaveAttribute("data-state", "done", { timeout: 120_000 });
  const chart = page.locator("#chart");
  await expect(chart).toHaveAttribute("data-lines", "4", { timeout: 20_000 });
  await expect(chart).toHaveAttribute("data-dashed", "2");
  await expect(chart).toHaveAttribute(
    "data-labels",
    JSON.stringify(["wall [tiny-clip]", "wall [tiny-clip-gelu]", "grass [tiny-clip]", "grass [tiny-clip-gelu]"]),
  );
  await expect(chart).toHaveAttribute("data-covered", String(FRAMES), { timeout: 20_000 });
  const reference = cliCompare(["wall", "grass"], "tiny-clip", "tiny-clip-gelu");
  const [a, b] = reference.models.map((m: any) => m.scores);
  // The hover readout shows both models' scores, equal to the CLI's.
  for (const frame of [0, 321]) {
    const values = await readout(page, frame);
    for (const prompt of ["wall", "grass"]) {
      expect(Math.abs(values[`${prompt} [tiny-clip]`] - a[prompt][frame])).toBeLessThan(1e-6);
      expect(Math.abs(values[`${prompt} [tiny-clip-gelu]`] - b[prompt][frame])).toBeLessThan(1e-6);
    }
  }
  await page.screenshot({ path: "test-results/two-models.png" });

  // The difference view: one line per prompt, first minus second, as the CLI computes it.
  await page.locator("#difference").check();
  await expect(chart).toHaveAttribute("data-lines", "2");
  await expect(chart).toHaveAttribute("data-dashed", "0");
  await expect(chart).toHaveAttribute("data-y-label", "cosine, first − second");
  let nonzero = 0;
  for (const frame of [0, 150, 321, 599]) {
    const values = await readout(page, frame);
    for (const prompt of ["wall", "grass"]) {
      const shown = values[`${prompt} [tiny-clip − tiny-clip-gelu]`];
      expect(Math.abs(shown - reference.difference[prompt][frame])).toBeLessThan(1e-6);
      if (Math.abs(shown) > 1e-6) nonzero++;
    }
  }
  expect(nonzero, "the two models disagree somewhere").toBeGreaterThan(0);
  await page.screenshot({ path: "test-results/two-models-difference.png" });

  // The address is a share link of this view: opened afresh, it shows the same.
  const url = new URL(page.url());
  expect(url.searchParams.get("compare")).toBe("tiny-clip-gelu");
  expect(url.searchParams.get("diff")).toBe("1");
  expect(url.searchParams.get("model")).toBeNull(); // the default model needs no name
  const shared = await page.context().newPage();
  await openPlayer(shared, url.pathname + url.search);
  await expect(shared.locator("#compare")).toHaveValue("tiny-clip-gelu");
  await expect(shared.locator("#difference")).toBeChecked();
  await expect(shared.locator("#chart")).toHaveAttribute("data-lines", "2", { timeout: 20_000 });
  await expect(shared.locator("#chart")).toHaveAttribute(
    "data-labels",
    JSON.stringify(["wall [tiny-clip − tiny-clip-gelu]", "grass [tiny-clip − tiny-clip-gelu]"]),
  );
  await shared.close();

  // Two families on one chart: CLIP solid, SigLIP dashed.
  await page.locator("#difference").uncheck();
  await page.locator("#compare").selectOption("tiny-siglip");
  await expect(page.locator("#index-status-compare")).toContainText("tiny-siglip", { timeout: 120_000 });
  await expect(page.locator("#index-status-compare")).toHaveAttribute("data-state", "done", { timeout: 120_000 });
  await expect(chart).toHaveAttribute("data-dashed", "2", { timeout: 20_000 });
  await expect(chart).toHaveAttribute("data-covered", String(FRAMES), { timeout: 20_000 });
  await readout(page, 321);
  await page.screenshot({ path: "test-results/clip-and-siglip.png" });
});

test("a link naming a model the server does not have says so and shows the default", async ({ page }) => {
  await openPlayer(page, "/?p=wall&model=gone-model&compare=also-gone");
  await expect(page.locator("#model-error")).toContainText('no model "gone-model": showing the default model');
  await expect(page.locator("#model")).toHaveValue("tiny-clip");
  await expect(page.locator("#compare")).toHaveValue("");
  await expect(page.locator("#index-status")).toHaveAttribute("data-state", "done", { timeout: 20_000 });
  await expect(page.locator("#chart")).toHaveAttribute("data-lines", "1", { timeout: 20_000 });
  const url = new URL(page.url());
  expect(url.searchParams.get("model")).toBeNull();
  expect(url.searchParams.get("compare")).toBeNull();
});

test("switching to SigLIP indexes it once, offers its sigmoid view, and switching back embeds nothing", async ({ page }) => {
  await openPlayer(page, "/?p=wall");
  await expect(page.locator("#index-status")).toHaveAttribute("data-state", "done", { timeout: 120_000 });
  const clipBefore = await status(page, "tiny-clip");
  await page.locator("#model").selectOption("tiny-siglip");
  await expect(page.locator("#index-status")).toHaveAttribute("data-state", "done", { timeout: 120_000 });
  await expect(page.locator("#index-status")).toContainText("tiny-siglip");
  await expect(page.locator("#chart")).toHaveAttribute("data-covered", String(FRAMES), { timeout: 20_000 });
  expect(new URL(page.url()).searchParams.get("model")).toBe("tiny-siglip");
  // SigLIP's probabilities are a sigmoid per prompt (one prompt: not all 1 as a softmax would be).
  await page.locator("#softmax").check();
  await expect(page.locator("#probability-label")).toContainText("sigmoid per prompt");
  const values = await readout(page, 100);
  expect(values["wall"]).toBeGreaterThan(0);
  expect(values["wall"]).toBeLessThan(1);
  const siglip = await status(page, "tiny-siglip");
  // Back to the default: its embeddings exist, nothing is embedded again.
  await page.locator("#model").selectOption("tiny-clip");
  await expect(page.locator("#index-status")).toHaveAttribute("data-state", "done", { timeout: 20_000 });
  await expect(page.locator("#index-status")).toContainText("tiny-clip");
  await expect(page.locator("#probability-label")).toContainText("softmax over prompts");
  await page.locator("#model").selectOption("tiny-siglip");
  await expect(page.locator("#index-status")).toContainText("tiny-siglip");
  expect((await status(page, "tiny-clip")).images_embedded).toBe(clipBefore.images_embedded);
  expect((await status(page, "tiny-siglip")).images_embedded).toBe(siglip.images_embedded);
});
