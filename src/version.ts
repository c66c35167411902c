/** The product's version: `opencmg --version`, the build-info metric. Kept equal to package.json's (a test checks). */
export const VERSION = "0.2.0";
