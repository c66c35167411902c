import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { FluentProvider, webLightTheme } from "@fluentui/react-components";
import { App } from "./App.tsx";
import { keepRootVisibleWithoutDialogs } from "./dialogs.ts";
import "./global.css";

const root = document.getElementById("root")!;
keepRootVisibleWithoutDialogs(root);
createRoot(root).render(
  <StrictMode>
    <FluentProvider theme={webLightTheme} style={{ minHeight: "100vh" }}>
      <App />
    </FluentProvider>
  </StrictMode>,
);
