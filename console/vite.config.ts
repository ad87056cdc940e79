import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// `npm run build` writes dist/, which the console process (`python -m services.console`) serves
// next to its gRPC-Web gateway. `npm run dev` proxies the gateway from a running suite.
export default defineConfig({
  plugins: [react()],
  build: { outDir: "dist", emptyOutDir: true, sourcemap: false, chunkSizeWarningLimit: 1500 },
  server: { proxy: { "/tuneforge.": process.env.TUNEFORGE_CONSOLE_URL ?? "http://127.0.0.1:8080" } },
});
