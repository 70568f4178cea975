/// <reference types="vitest/config" />
import { defineConfig } from 'vite'
import react from '@vitejs/plugin-react'

// `npm run dev` serves the UI with hot reload and forwards the API to a running vellum
// (VELLUM_URL, default http://localhost:8000), so the session cookie stays same-origin.
const target = process.env.VELLUM_URL ?? 'http://localhost:8000'

export default defineConfig({
  plugins: [react()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    chunkSizeWarningLimit: 1200,
    sourcemap: false
  },
  server: {
    proxy: {
      '/api': { target, changeOrigin: false },
      '/graphql': { target, ws: true },
      '/ws': { target, ws: true },
      '/healthz': { target }
    }
  },
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node'
  }
})
