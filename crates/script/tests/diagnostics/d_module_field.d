python$target:libpython3.11.so::function-entry
{
	trace(1);
}
