// New prompt → its curve drawn, on a 1-hour video indexed at 1 fps (scripts/measure_new_prompt.sh
// makes the video, indexes it and starts the server on $URL).
const { chromium } = require("@playwright/test");
(async () => {
  const url = process.env.URL ?? "http://127.0.0.1:3400/";
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium", args: ["--no-sandbox", "--headless"] });
  const page = await browser.newPage({ viewport: { width: 1920, height: 1080 } });
  await page.goto(url);
  await page.waitForSelector('#index-status[data-state="done"]', { timeout: 120000 });
  await page.waitForSelector('#chart[data-covered="108000"][data-lines="2"]', { timeout: 60000 });
  const times = [];
  for (let i = 0; i < 7; i++) {
    const lines = Number(await page.getAttribute("#chart", "data-lines"));
    await page.fill("#new-prompt", `a new prompt number ${i} ${Date.now()}`);
    times.push(await page.evaluate((lines) => new Promise((resolve) => {
      const chart = document.querySelector("#chart");
      const t0 = performance.now();
      const check = () => {
        if (Number(chart.getAttribute("data-lines")) === lines + 1) resolve(performance.now() - t0);
        else requestAnimationFrame(check);
      };
      document.querySelector("#add-prompt").click();
      requestAnimationFrame(check);
    }), lines));
  }
  times.sort((a, b) => a - b);
  console.log(`new prompt → curve, 1-hour 30 fps video indexed at 1 fps (108,000 frames, 3,600 embedded), 7 new prompts: median ${times[3].toFixed(1)} ms (min ${times[0].toFixed(1)}, max ${times[6].toFixed(1)})`);
  await browser.close();
})();
