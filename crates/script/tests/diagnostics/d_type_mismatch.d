python$target:::function-entry
{
	self->x = copyinstr(arg1);
	self->x = 5;
}
