export { ChronicleSaver, type ChronicleSaverOptions } from "./saver.ts"
